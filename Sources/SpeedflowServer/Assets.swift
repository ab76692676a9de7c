import Foundation
import Hummingbird
import NIOCore

/// Static files bundled with the binary: the OpenAPI document and the dashboard. Loaded once at start-up.
struct Assets: Sendable {
    let files: [String: (contentType: String, bytes: ByteBuffer)]

    init() {
        var files: [String: (String, ByteBuffer)] = [:]
        // `.copy("Resources")` keeps the folder: the files are under <bundle>/Resources.
        if let root = Optional(Bundle.module.bundleURL.appendingPathComponent("Resources")),
            let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        {
            let rootPath = root.standardizedFileURL.path
            for case let url as URL in enumerator {
                guard let data = try? Data(contentsOf: url), !url.hasDirectoryPath else { continue }
                let relative = String(url.standardizedFileURL.path.dropFirst(rootPath.count + 1))
                files[relative] = (Self.contentType(url.pathExtension), ByteBuffer(bytes: data))
            }
        }
        self.files = files
    }

    func response(_ path: String) throws -> Response {
        guard let file = files[path] else { throw APIError(.notFound, "not_found", "no such file: \(path)") }
        return Response(
            status: .ok, headers: [.contentType: file.contentType, .cacheControl: "no-cache"], body: .init(byteBuffer: file.bytes))
    }

    static func contentType(_ ext: String) -> String {
        switch ext {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "yaml", "yml": "application/yaml"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}
