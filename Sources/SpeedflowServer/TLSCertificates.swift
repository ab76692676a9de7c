import Dispatch
import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The server's TLS context, replaceable while the server runs: every new connection takes the current one
/// (`TLSServerChannel`), connections already open keep theirs.
///
/// As a `Service` it reloads the files on SIGHUP and when their modification time, size or inode changes (checked
/// every `reloadCheckIntervalMs`). A reload that fails (unreadable file, bad PEM, a key that does not match the
/// certificate) keeps the previous context and logs an error; the next change or SIGHUP tries again. Hummingbird's
/// `TLSChannel` builds its `NIOSSLContext` once, hence this.
public final class TLSCertificates: Service, Sendable {
    public let files: ServerConfiguration.TLS
    private let logger: Logger
    private let current: Mutex<NIOSSLContext>
    /// What the files looked like at the last load attempt, so a change is tried once, not every poll.
    private let lastSeen: Mutex<[FileStamp?]>
    private let reloads = Mutex((succeeded: 0, failed: 0))

    /// Loads the files; throws a `TLSSetupError` naming the file at fault.
    public init(files: ServerConfiguration.TLS, logger: Logger) throws {
        self.files = files
        self.logger = logger
        lastSeen = Mutex(Self.stamps(files))
        let context = try Self.load(files)
        current = Mutex(context.context)
        logger.info("TLS certificate loaded", metadata: context.metadata(files))
    }

    /// Loads the files once and drops them: lets a role refuse bad TLS files before it opens its data.
    public static func validate(_ files: ServerConfiguration.TLS) throws {
        _ = try load(files)
    }

    /// The context for a connection being accepted now.
    public var context: NIOSSLContext { current.withLock { $0 } }

    /// Whether clients must present a certificate (`--tls-client-ca` given).
    public var requiresClientCertificates: Bool { files.clientCAFile != nil }

    /// Successful and failed reloads since start.
    public var reloadCounts: (succeeded: Int, failed: Int) { reloads.withLock { $0 } }

    /// Reads the files again and swaps the context in; on failure keeps the old one. Blocking file IO: call it
    /// off the cooperative pool (the service does).
    @discardableResult
    public func reload(reason: String) -> Bool {
        lastSeen.withLock { $0 = Self.stamps(files) }
        do {
            let loaded = try Self.load(files)
            current.withLock { $0 = loaded.context }
            reloads.withLock { $0.succeeded += 1 }
            var metadata = loaded.metadata(files)
            metadata["tls.reload.reason"] = "\(reason)"
            logger.notice("TLS certificate reloaded; new connections use it", metadata: metadata)
            return true
        } catch {
            reloads.withLock { $0.failed += 1 }
            logger.error(
                "TLS reload failed; still serving the previous certificate",
                metadata: ["tls.reload.reason": "\(reason)", "error": "\(error)"])
            return false
        }
    }

    /// Reloads when a file changed since the last attempt.
    func reloadIfChanged() {
        let now = Self.stamps(files)
        guard lastSeen.withLock({ $0 != now }) else { return }
        reload(reason: "files changed")
    }

    /// SIGHUP and the modification-time poll, until graceful shutdown.
    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let interval = Duration.milliseconds(max(files.reloadCheckIntervalMs, 50))
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in hangups { await Self.offPool { self.reload(reason: "SIGHUP") } }
                }
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil {
                        await Self.offPool { self.reloadIfChanged() }
                    }
                }
            }
        }
    }

    /// Runs file IO and context building on a Dispatch thread: the cooperative pool has only two threads here.
    private static func offPool(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                body()
                done.resume()
            }
        }
    }

    // MARK: loading

    struct Loaded {
        var context: NIOSSLContext
        var chain: [NIOSSLCertificate]

        func metadata(_ files: ServerConfiguration.TLS) -> Logger.Metadata {
            var m: Logger.Metadata = [
                "tls.cert": "\(files.certificateFile)", "tls.chain.length": "\(chain.count)",
                "tls.cert.not_after": "\(Date(timeIntervalSince1970: TimeInterval(chain[0].notValidAfter)))",
            ]
            if let ca = files.clientCAFile { m["tls.client_ca"] = "\(ca)" }
            return m
        }
    }

    /// Builds a context from the files: TLS 1.2 or newer; with a client CA, a client certificate chaining to it is
    /// required (the system trust store is not consulted).
    static func load(_ files: ServerConfiguration.TLS) throws -> Loaded {
        let chain = try readPEM(files.certificateFile, what: "--tls-cert") { try NIOSSLCertificate.fromPEMBytes($0) }
        guard !chain.isEmpty else { throw TLSSetupError(.invalidPEM, file: files.certificateFile, "holds no PEM certificate (--tls-cert)") }
        let key = try readPEM(files.keyFile, what: "--tls-key") { try NIOSSLPrivateKey(bytes: $0, format: .pem) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let caFile = files.clientCAFile {
            let authorities = try readPEM(caFile, what: "--tls-client-ca") { try NIOSSLCertificate.fromPEMBytes($0) }
            guard !authorities.isEmpty else { throw TLSSetupError(.invalidPEM, file: caFile, "holds no PEM certificate (--tls-client-ca)") }
            configuration.trustRoots = .certificates(authorities)
            // Chain and validity checked; there is no host name to check a client against.
            configuration.certificateVerification = .noHostnameVerification
            // Tells clients which CA to pick their certificate from.
            configuration.sendCANameList = true
        }
        do {
            return Loaded(context: try NIOSSLContext(configuration: configuration), chain: chain)
        } catch {
            throw TLSSetupError(
                .keyMismatch, file: files.keyFile,
                "cannot be used with the certificate in \(files.certificateFile) (\(error)); is it that certificate's key?")
        }
    }

    private static func readPEM<T>(_ path: String, what: String, _ parse: ([UInt8]) throws -> T) throws -> T {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw TLSSetupError(.unreadableFile, file: path, "cannot be read (\(what)): \((error as NSError).localizedDescription)")
        }
        do {
            return try parse(bytes)
        } catch {
            throw TLSSetupError(.invalidPEM, file: path, "is not valid PEM (\(what)): \(error)")
        }
    }

    /// Modification time, size and inode: a file replaced by `mv` (new inode) or rewritten in place is seen.
    struct FileStamp: Equatable {
        var modified: Date?
        var size: Int?
        var inode: Int?
    }

    static func stamps(_ files: ServerConfiguration.TLS) -> [FileStamp?] {
        [files.certificateFile, files.keyFile, files.clientCAFile].map { path in
            guard let path, let a = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
            return FileStamp(
                modified: a[.modificationDate] as? Date, size: (a[.size] as? NSNumber)?.intValue,
                inode: (a[.systemFileNumber] as? NSNumber)?.intValue)
        }
    }
}

/// Why the TLS files could not be used; the description names the file.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        /// Missing, unreadable or a directory.
        public static let unreadableFile = Code(description: "unreadable_file")
        /// Not PEM, or not the kind of PEM expected (certificate / private key).
        public static let invalidPEM = Code(description: "invalid_pem")
        /// The key does not belong to the certificate, or BoringSSL refused the pair.
        public static let keyMismatch = Code(description: "key_mismatch")
    }

    public var code: Code
    public var file: String
    public var message: String

    public init(_ code: Code, file: String, _ message: String) {
        self.code = code
        self.file = file
        self.message = message
    }

    public var description: String { "TLS: \(file) \(message)" }
}
