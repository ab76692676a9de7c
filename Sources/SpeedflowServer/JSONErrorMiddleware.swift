import Hummingbird
import Logging

/// Makes every error answer JSON `{"reason", "message"}`: Hummingbird's own errors (unknown route → 404
/// `not_found`, wrong method, undecodable request) and anything unexpected (500 `internal_error`, logged, never
/// an empty body). `APIError`s (every reason the handlers know, the store's `store_corrupt` too) pass through.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw APIError(error.status, Self.reason(for: error.status), error.body ?? Self.message(for: error.status, request))
        } catch let error as any HTTPResponseError {
            throw APIError(error.status, Self.reason(for: error.status), "\(error)")
        } catch {
            context.logger.error("Request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            throw APIError(.internalServerError, "internal_error", "internal error: \(error)")
        }
    }

    static func reason(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "bad_request"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 408: "request_timeout"
        case 413: "body_too_large"
        case 415: "unsupported_media_type"
        case 500: "internal_error"
        case 503: "unavailable"
        default: "http_\(status.code)"
        }
    }

    static func message(for status: HTTPResponse.Status, _ request: Request) -> String {
        switch status.code {
        case 404: "no route for \(request.method) \(request.uri.path); see /openapi.yaml"
        case 405: "method \(request.method) is not allowed on \(request.uri.path)"
        default: status.reasonPhrase
        }
    }
}
