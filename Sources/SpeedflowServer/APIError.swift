import Foundation
import HTTPTypes
import Hummingbird

/// An HTTP error with a stable machine-readable `reason`, rendered as `{"reason": ..., "message": ...}`.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var reason: String
    public var message: String
    public var retryAfterSeconds: Int?
    /// E.g. `WWW-Authenticate` on 401.
    public var extraHeaders: HTTPFields

    public init(
        _ status: HTTPResponse.Status, _ reason: String, _ message: String, retryAfterSeconds: Int? = nil, extraHeaders: HTTPFields = [:]
    ) {
        self.status = status
        self.reason = reason
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.extraHeaders = extraHeaders
    }

    public var headers: HTTPFields {
        var h: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { h[.retryAfter] = String(retryAfterSeconds) }
        h.append(contentsOf: extraHeaders)
        SecurityHeaders.add(to: &h)
        return h
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var json = JSONWriter()
        json.raw("{\"reason\":")
        json.string(reason)
        json.raw(",\"message\":")
        json.string(message)
        json.raw("}")
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}
