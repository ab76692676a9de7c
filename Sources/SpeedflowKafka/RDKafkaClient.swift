#if Kafka
import Crdkafka
import Logging
import Synchronization

/// What librdkafka's callbacks reach through the client's opaque pointer: the logger and the fatal-error state.
/// It outlives the `rd_kafka_t` because the owning `RDKafkaClient` holds it and destroys the handle first.
final class RDKafkaContext: Sendable {
    let logger: Logger
    let fatalError = Mutex<KafkaError?>(nil)
    /// What a client kind's own callbacks need (the consumer's channel for the rebalance callback).
    let attachment: (any AnyObject & Sendable)?

    init(logger: Logger, attachment: (any AnyObject & Sendable)?) {
        self.logger = logger
        self.attachment = attachment
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> RDKafkaContext? {
        guard let opaque else { return nil }
        return Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// An owned `rd_kafka_t`: `deinit` destroys it (and its cached topic handles).
///
/// `@unchecked Sendable`: librdkafka's API is thread safe on one `rd_kafka_t` (rdkafka.h, "Threads and
/// callbacks"), the pointer is immutable, and the topic-handle cache is behind a `Mutex`. `rd_kafka_destroy`
/// blocks until librdkafka's threads end, so the last reference is dropped on a dedicated thread (the producer's
/// poll thread, the consumer's thread), never on the cooperative pool.
final class RDKafkaClient: @unchecked Sendable {
    let pointer: OpaquePointer
    let context: RDKafkaContext
    private struct Topics: ~Copyable { var handles: [String: OpaquePointer] = [:] }
    private let topics = Mutex(Topics())

    /// Creates a client of `type` from `properties` (applied in order; later ones win).
    init(type: rd_kafka_type_t, properties: [(String, String)], logger: Logger,
         attachment: (any AnyObject & Sendable)? = nil,
         configure: (OpaquePointer) -> Void = { _ in }) throws(KafkaError) {
        let context = RDKafkaContext(logger: logger, attachment: attachment)
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(code: .configuration, message: "\(key)=\(value): \(cString(errstr))")
            }
        }
        rd_kafka_conf_set_opaque(conf, context.opaque)
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let context = RDKafkaContext.from(rd_kafka_opaque(rk)) else { return }
            // syslog levels. librdkafka logs retried, transient trouble (a refused connection) at 3 (LOG_ERR):
            // a warning here; failures that matter reach the caller as errors (delivery reports, error_cb).
            let swiftLevel: Logger.Level = level <= 2 ? .error : level <= 4 ? .warning : level <= 6 ? .info : .debug
            context.logger.log(level: swiftLevel, "\(String(cString: message!))",
                               metadata: ["kafka.facility": "\(String(cString: facility!))"])
        }
        rd_kafka_conf_set_error_cb(conf) { rk, err, reason, opaque in
            guard let context = RDKafkaContext.from(opaque) else { return }
            let text = reason.map { String(cString: $0) } ?? ""
            if err == RD_KAFKA_RESP_ERR__FATAL.rawValue, let rk {
                var buf = [CChar](repeating: 0, count: 512)
                let code = rd_kafka_fatal_error(rk, &buf, buf.count)
                let error = KafkaError(code: .fatal, message: "fatal: \(cString(buf))", librdkafkaError: code.rawValue)
                context.fatalError.withLock { if $0 == nil { $0 = error } }
                context.logger.error("kafka fatal error", metadata: ["kafka.error": "\(cString(buf))"])
            } else {
                context.logger.warning("kafka error", metadata: ["kafka.error": "\(text)", "kafka.code": "\(err)"])
            }
        }
        configure(conf)
        guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)  // rd_kafka_new only takes ownership on success
            throw KafkaError(code: .configuration, message: "rd_kafka_new: \(cString(errstr))")
        }
        self.pointer = rk
        self.context = context
    }

    /// A topic handle for producing, created once per name and destroyed with the client.
    func topic(_ name: String) throws(KafkaError) -> OpaquePointer {
        let result: Result<OpaquePointer, KafkaError> = topics.withLock { topics in
            if let handle = topics.handles[name] { return .success(handle) }
            guard let handle = rd_kafka_topic_new(pointer, name, nil) else {
                return .failure(KafkaError(code: .configuration, "topic \(name)", rd_kafka_last_error()))
            }
            topics.handles[name] = handle
            return .success(handle)
        }
        return try result.get()
    }

    deinit {
        topics.withLock { topics in
            for handle in topics.handles.values { rd_kafka_topic_destroy(handle) }
            topics.handles = [:]
        }
        rd_kafka_destroy(pointer)
    }
}

/// The text of a NUL-terminated buffer librdkafka wrote an error into.
func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
#endif
