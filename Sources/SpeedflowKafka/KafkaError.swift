#if Kafka
import Crdkafka

/// An error of the Kafka client layer; `code` says what went wrong, `message` the detail librdkafka gave.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case configuration, deliveryFailed, deliveryTimedOut, queueFull, fatal, closed, consumer, mockCluster
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A librdkafka property was rejected, or the client could not be created.
        public static let configuration = Code(.configuration)
        /// The delivery report says the message is not in Kafka (it may be retried: identities make that safe).
        public static let deliveryFailed = Code(.deliveryFailed)
        /// `messageTimeout` passed before the broker acknowledged the message (broker down, no leader, ...).
        public static let deliveryTimedOut = Code(.deliveryTimedOut)
        /// The local producer queue stayed full for the whole message timeout.
        public static let queueFull = Code(.queueFull)
        /// The client hit a fatal error (e.g. the idempotent producer lost its guarantees) and must be recreated.
        public static let fatal = Code(.fatal)
        /// The client was closed.
        public static let closed = Code(.closed)
        /// A consumer-side failure (subscription, assignment, fetch).
        public static let consumer = Code(.consumer)
        /// The mock cluster refused an operation.
        public static let mockCluster = Code(.mockCluster)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// librdkafka's `rd_kafka_resp_err_t` value, when one is involved.
    public var librdkafkaError: Int32?

    public init(code: Code, message: String, librdkafkaError: Int32? = nil) {
        self.code = code
        self.message = message
        self.librdkafkaError = librdkafkaError
    }

    init(code: Code, _ context: String, _ err: rd_kafka_resp_err_t) {
        self.init(code: code, message: "\(context): \(String(cString: rd_kafka_err2str(err)))",
                  librdkafkaError: err.rawValue)
    }

    public var description: String { "KafkaError(\(code)): \(message)" }
}
#endif
