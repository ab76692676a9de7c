import ArgumentParser
import Foundation
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowServer

/// `--auth`, `--credentials`, `--cors-origin`: shared by the HTTP roles.
struct AuthOptions: ParsableArguments {
    @Option(help: "required: every route but /health, /openapi.yaml and the dashboard page needs a token (Authorization: Bearer) or a dashboard session. off: no checks — anyone who reaches the port may write for any camera. Default: required unless --host is a loopback address (then off). Env: SPEEDFLOW_AUTH.")
    var auth: String?

    @Option(help: "Credentials file this node checks tokens against, re-read every second (so revocations arrive without a restart). Default: <data dir>/credentials.json. Env: SPEEDFLOW_CREDENTIALS.")
    var credentials: String?

    @Option(help: "A browser origin (e.g. https://ops.example.org) allowed to write from its pages; repeatable. Default: none (browsers may write only from this server's own pages).")
    var corsOrigin: [String] = []

    @Option(help: "Requests per second a camera or reader credential may make (10 s burst; its own limit from `token create` wins); beyond: 429 + Retry-After. Default: \(Settings.formatNumber(Quotas.Limits().requestsPerSecond)).")
    var requestsPerSecond: Double?

    @Option(help: "Events per second a camera credential may send (10 s burst; one larger batch passes when the bucket is not empty); beyond: 429 + Retry-After, nothing stored. Default: \(Settings.formatNumber(Quotas.Limits().eventsPerSecond)).")
    var eventsPerSecond: Double?

    @Option(help: "Failed authentications per second one client address may make (10 s burst), over HTTP and MQTT together; beyond: 429 too_many_failed_attempts (MQTT: CONNACK 0x9F). Raise it for many cameras behind one NAT address. Default: \(Settings.formatNumber(Quotas.Limits().failedAuthPerSecond)).")
    var failedAuthPerSecond: Double?
}

extension Settings {
    func auth(_ o: AuthOptions) throws -> AuthConfiguration {
        var c = AuthConfiguration()
        if let text = o.auth ?? reader.string(forKey: "auth") {
            guard let mode = AuthMode(rawValue: text) else { throw ValidationError("auth must be required or off, not '\(text)'") }
            c.mode = mode
        }
        c.credentialsFile = o.credentials ?? reader.string(forKey: "credentials")
        c.allowedOrigins = o.corsOrigin
        c.limits.requestsPerSecond = try double("requests_per_second", o.requestsPerSecond, default: c.limits.requestsPerSecond)
        c.limits.eventsPerSecond = try double("events_per_second", o.eventsPerSecond, default: c.limits.eventsPerSecond)
        c.limits.failedAuthPerSecond = try double("failed_auth_per_second", o.failedAuthPerSecond, default: c.limits.failedAuthPerSecond)
        guard c.limits.requestsPerSecond > 0, c.limits.eventsPerSecond > 0, c.limits.failedAuthPerSecond > 0 else {
            throw ValidationError("requests_per_second, events_per_second and failed_auth_per_second must be more than 0")
        }
        return c
    }
}

/// Where `token` commands find the credentials file: `--credentials`, else `<--data-dir>/credentials.json`.
struct CredentialsLocation: ParsableArguments {
    @Option(help: "Data directory whose credentials.json to manage. Default: \(DataDirectory.defaultPath). Env: SPEEDFLOW_DATA_DIR.")
    var dataDir: String?

    @Option(help: "Credentials file to manage instead (e.g. the one scale-out nodes share). Env: SPEEDFLOW_CREDENTIALS.")
    var credentials: String?

    func path() async throws -> String {
        let settings = try await Settings.load(configFile: nil)
        return AuthConfiguration().with(credentials: credentials ?? settings.reader.string(forKey: "credentials"))
            .credentialsPath(dataDir: dataDir ?? settings.reader.string(forKey: "data_dir") ?? DataDirectory.defaultPath)
    }
}

extension AuthConfiguration {
    fileprivate func with(credentials: String?) -> AuthConfiguration {
        var c = self
        c.credentialsFile = credentials
        return c
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke credentials (tokens with a role: camera, reader, admin).",
        discussion: """
            Works on the credentials file of a data directory, also while a server runs on it: servers re-read the \
            file every second. Access to the data directory is the root of trust: the first admin token is made \
            here. Every change is appended to audit.log next to the file (time, actor, action).
            """,
        subcommands: [Create.self, List.self, Revoke.self, Limits.self])

    /// The person running the command, for the audit log.
    static var actor: String {
        let user = ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
        return "cli:\(user)@\(ProcessInfo.processInfo.hostName)"
    }

    static func fail(_ error: CredentialError) -> ValidationError { ValidationError("\(error.message) (reason: \(error.reason))") }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a credential and print its token on stdout (shown once; only its SHA-256 is stored).",
            discussion: """
                Examples:
                  speedflow token create --role admin --name ops
                  speedflow token create --role camera --kvfv KV00001
                  speedflow token create --role camera --kvfv 'KV01*' --name 'A-107 gantry'   (every id starting KV01)
                  speedflow token create --role reader --name grafana
                """)

        @OptionGroup var location: CredentialsLocation

        @Option(help: "camera (writes events for its --kvfv cameras), reader (queries, dashboard, metrics) or admin (everything).")
        var role: String

        @Option(help: "For camera credentials: a camera id, or a prefix ending in * (KV01*); repeatable.")
        var kvfv: [String] = []

        @Option(help: "A label for people (site, system).")
        var name: String?

        @Option(help: "This credential's requests per second (default: the node's --requests-per-second).")
        var requestsPerSecond: Double?

        @Option(help: "This credential's events per second (default: the node's --events-per-second).")
        var eventsPerSecond: Double?

        func run() async throws {
            guard let role = Role(rawValue: role) else { throw ValidationError("--role must be camera, reader or admin, not '\(role)'") }
            let path = try await location.path()
            do throws(CredentialError) {
                let (record, token) = try CredentialAdmin.create(
                    at: path, role: role, kvfv: kvfv, name: name,
                    limits: RateLimits(requestsPerSecond: requestsPerSecond, eventsPerSecond: eventsPerSecond), actor: TokenCommand.actor)
                FileHandle.standardError.write(Data("created \(record.role.rawValue) credential \(record.id)\(record.kvfv.patterns.isEmpty ? "" : " for \(record.kvfv)") in \(path); the token (shown only now):\n".utf8))
                print(token)
            } catch {
                throw TokenCommand.fail(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List credentials (never their tokens).")

        @OptionGroup var location: CredentialsLocation

        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let path = try await location.path()
            let records: [CredentialRecord]
            do throws(CredentialError) {
                records = try CredentialAdmin.list(at: path)
            } catch {
                throw TokenCommand.fail(error)
            }
            if json {
                for r in records {
                    var o: [String: Any] = ["id": r.id, "role": r.role.rawValue, "kvfv": r.kvfv.patterns, "created_at": r.createdAt, "created_by": r.createdBy]
                    if let name = r.name { o["name"] = name }
                    if let revoked = r.revokedAt { o["revoked_at"] = revoked }
                    if let by = r.revokedBy { o["revoked_by"] = by }
                    print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
                }
                return
            }
            print("ID                ROLE    STATE    CREATED                   CAMERAS / NAME")
            for r in records {
                let state = r.isRevoked ? "revoked" : "active"
                let cameras = [r.kvfv.patterns.isEmpty ? nil : r.kvfv.description, r.name].compactMap { $0 }.joined(separator: "  ")
                print("\(r.id)  \(r.role.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0))  \(state.padding(toLength: 7, withPad: " ", startingAt: 0))  \(r.createdAt.padding(toLength: 24, withPad: " ", startingAt: 0))  \(cameras)")
            }
        }
    }

    struct Limits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a credential's own rate limits (omit both to go back to the node's defaults); audited.")

        @OptionGroup var location: CredentialsLocation

        @Argument(help: "The credential's id.") var id: String

        @Option(help: "Requests per second.") var requestsPerSecond: Double?

        @Option(help: "Events per second.") var eventsPerSecond: Double?

        func run() async throws {
            let path = try await location.path()
            do throws(CredentialError) {
                let r = try CredentialAdmin.setLimits(
                    at: path, id: id, limits: RateLimits(requestsPerSecond: requestsPerSecond, eventsPerSecond: eventsPerSecond), actor: TokenCommand.actor)
                print("credential \(r.id): requests/s \(r.requestsPerSecond.map { Settings.formatNumber($0) } ?? "default"), events/s \(r.eventsPerSecond.map { Settings.formatNumber($0) } ?? "default")")
            } catch {
                throw TokenCommand.fail(error)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a credential: every node reading the file refuses its token within about a second.")

        @OptionGroup var location: CredentialsLocation

        @Argument(help: "The credential's id (speedflow token list).") var id: String

        func run() async throws {
            let path = try await location.path()
            do throws(CredentialError) {
                let record = try CredentialAdmin.revoke(at: path, id: id, actor: TokenCommand.actor)
                print("revoked \(record.role.rawValue) credential \(record.id) at \(record.revokedAt ?? "?")")
            } catch {
                throw TokenCommand.fail(error)
            }
        }
    }
}
