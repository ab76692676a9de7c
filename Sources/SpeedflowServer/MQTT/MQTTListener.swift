import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowMQTT

/// The MQTT 3.1.1 / 5 listener (`--mqtt-port`): cameras publish events, acknowledged once durable.
///
/// It takes events through the same `IngestController` as `POST /events` (so the same intake: the embedded log
/// in `serve`, Kafka in an ingest node), checks the same credentials (the token as the password), and speaks TLS
/// with the HTTP server's certificate when HTTP does. As a `Service`: on graceful shutdown it stops accepting,
/// lets every connection finish the PUBLISHes in flight (acknowledging them), disconnects them (MQTT 5: 0x8B),
/// and returns; listed after the engine, it stops before the engine drains.
public final class MQTTListener: Service, Sendable {
    /// What every connection of the listener shares.
    final class Shared: Sendable {
        let configuration: MQTTConfiguration
        let ingest: MQTTIngest
        let access: AccessControl
        let sessions: MQTTSessions
        let tls: TLSCertificates?
        let logger: Logger
        let clock: @Sendable () -> Int64

        let openGauge = Gauge(label: "speedflow_mqtt_connections_open")
        let publishCounters: [Counter] = (0..<3).map { Counter(label: "speedflow_mqtt_publish_total", dimensions: [("qos", "\($0)")]) }

        init(configuration: MQTTConfiguration, ingest: MQTTIngest, access: AccessControl, tls: TLSCertificates?, logger: Logger, clock: @escaping @Sendable () -> Int64) {
            self.configuration = configuration
            self.ingest = ingest
            self.access = access
            self.sessions = MQTTSessions(maxStored: configuration.maxStoredSessions)
            self.tls = tls
            self.logger = logger
            self.clock = clock
        }

        func nowMs() -> Int64 { clock() }

        func count(connect result: String) {
            Counter(label: "speedflow_mqtt_connect_total", dimensions: [("result", result)]).increment()
        }

        func count(disconnect reason: String) {
            Counter(label: "speedflow_mqtt_disconnect_total", dimensions: [("reason", reason)]).increment()
        }

        func count(publishQoS qos: MQTTQoS) { publishCounters[Int(qos.rawValue)].increment() }

        enum Authentication {
            case accepted(Principal?)
            /// CONNACK codes (3.1.1, 5), the metric's result and why.
            case refused(UInt8, UInt8, String, String)
        }

        /// The CONNECT's credential, checked as HTTP checks a bearer token (`AccessControl`): with auth off,
        /// anyone (credentials ignored); with auth required, the password is a token (`sft_…`), the user name
        /// its id or empty, and a reader credential may not connect; under mutual TLS a client certificate's
        /// camera grants serve when there is no password. Failed attempts count against the address as HTTP's
        /// do (beyond the budget: refused without being checked).
        func authenticate(_ c: MQTTPacket.Connect, address: String, pipeline: ChannelPipeline.SynchronousOperations) -> Authentication {
            guard access.mode == .required else { return .accepted(nil) }
            guard let credentials = access.credentials else {
                return .refused(3, 0x88, "refused", "authentication is required and no credentials are loaded")
            }
            if let password = c.password {
                let principal = credentials.authenticate(String(decoding: password, as: UTF8.self))
                guard let principal, c.username.map({ $0.isEmpty || $0 == principal.credentialId }) ?? true else {
                    do {
                        try access.checkFailedAttempts(address)
                    } catch {
                        return .refused(4, 0x9F, "too_many_failed_attempts", "too many failed authentications from this address")
                    }
                    access.recordFailedAttempt(address)
                    return .refused(4, 0x86, "bad_credentials", "the user name or password is not a valid credential (password: the token; user name: its id)")
                }
                guard principal.mayWriteAny else {
                    return .refused(5, 0x87, "not_authorized", "a \(principal.role.rawValue) credential may not publish events")
                }
                return .accepted(principal)
            }
            if access.clientCertificates, let identity = try? ClientCertificateIdentity.of(pipeline), let grants = KvfvGrants(identity.kvfvGrants) {
                return .accepted(Principal(credentialId: "cert:" + String(identity.subject.prefix(100)), role: .camera, grants: grants))
            }
            return .refused(5, 0x87, "not_authorized", "a credential is needed: the token as the password, its id as the user name")
        }

        /// The pipeline of an accepted connection; closes it instead when there are too many or the listener drains.
        func configure(_ channel: any Channel) throws {
            guard sessions.openConnections < configuration.maxConnections, let token = sessions.track(channel) else {
                count(disconnect: "too_many_connections")
                channel.close(promise: nil)
                return
            }
            openGauge.record(sessions.openConnections)
            channel.closeFuture.whenComplete { [self] _ in
                sessions.untrack(token)
                openGauge.record(sessions.openConnections)
            }
            let pipeline = channel.pipeline.syncOperations
            if let tls {
                try pipeline.addHandler(NIOSSLServerHandler(context: tls.context))
                try pipeline.addHandler(TLSConnectionHandler(logger: logger))
            }
            try pipeline.addHandler(ByteToMessageHandler(MQTTFrameDecoder(maxPacketSize: configuration.maxPacketBytes)))
            try pipeline.addHandler(MQTTSessionHandler(shared: self, token: token))
        }
    }

    let shared: Shared
    let host: String
    let onListening: @Sendable (Int) -> Void
    /// How long shutdown waits for connections to finish what they have in flight.
    let drainTimeout: Duration

    /// - Parameters:
    ///   - intake: where events go (the node's `IngestController` intake).
    ///   - server: the HTTP settings: host, body limit (after gunzip), retry hints.
    ///   - onListening: called with the bound port (for the banner).
    public init(
        configuration: MQTTConfiguration, intake: Intake, server: ServerConfiguration, access: AccessControl, tls: TLSCertificates?,
        logger: Logger, drainTimeout: Duration = .seconds(10), onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        let controller = IngestController(intake: intake, configuration: server, access: access)
        shared = Shared(
            configuration: configuration, ingest: MQTTIngest(controller: controller), access: access, tls: tls, logger: logger,
            clock: { intake.now })
        host = server.host
        self.drainTimeout = drainTimeout
        self.onListening = onListening
    }

    public func run() async throws {
        let shared = self.shared
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Acknowledgements are small and latency is what a camera waits on.
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try shared.configure(channel) }
            }
            .bind(host: host, port: shared.configuration.port).get()
        let port = server.localAddress?.port ?? 0
        shared.logger.info(
            "MQTT listener started",
            metadata: ["mqtt.port": "\(port)", "mqtt.tls": "\(shared.tls != nil)", "mqtt.max_packet_bytes": "\(shared.configuration.maxPacketBytes)"])
        onListening(port)
        try? await gracefulShutdown()
        try? await server.close()
        let open = shared.sessions.drain()
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(MQTTDrainEvent()) }
        let timeout = drainTimeout
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for channel in open { try? await channel.closeFuture.get() }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            if await group.next() == false {
                shared.logger.warning("MQTT connections still open after the drain timeout: closing them", metadata: ["mqtt.open": "\(shared.sessions.openConnections)"])
                for channel in open { channel.close(promise: nil) }
            }
            group.cancelAll()
        }
        shared.logger.info("MQTT listener stopped")
    }

    /// Connections open now (tests).
    public var openConnections: Int { shared.sessions.openConnections }
}
