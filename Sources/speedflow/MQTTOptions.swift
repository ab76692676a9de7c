import ArgumentParser
import Configuration
import SpeedflowServer

/// The MQTT listener's flags (`serve`, `ingest`): off unless `--mqtt-port` is given.
struct MQTTOptions: ParsableArguments {
    @Option(help: "Also take events over MQTT 3.1.1/5 on this port (1883 is usual, 8883 with TLS; 0 picks a free port, printed on stdout), on --host, with the HTTP credentials and TLS. Default: off. Env: SPEEDFLOW_MQTT_PORT.")
    var mqttPort: Int?

    @Option(help: "Largest MQTT packet a client may send, e.g. 8MiB (the payload after gunzip is bounded by --max-body-size). Default: \(Settings.formatBytes(MQTTConfiguration().maxPacketBytes)).")
    var mqttMaxPacketSize: String?

    @Option(help: "PUBLISH packets of one MQTT connection being made durable at once, beyond which it is not read (MQTT 5 Receive Maximum). Default: \(MQTTConfiguration().maxInflight).")
    var mqttMaxInflight: Int?
}

extension Settings {
    /// `nil` when no MQTT port is set (flag, SPEEDFLOW_MQTT_PORT, or `mqtt_port` in the file).
    func mqtt(_ o: MQTTOptions) throws -> MQTTConfiguration? {
        guard o.mqttPort != nil || flagOrSetting("mqtt_port", nil) != nil || reader.int(forKey: ConfigKey("mqtt_port")) != nil else { return nil }
        let d = MQTTConfiguration()
        let port = try int("mqtt_port", o.mqttPort, default: d.port)
        guard (0...65_535).contains(port) else { throw ValidationError("mqtt_port must be 0…65535, not \(port)") }
        let maxPacket = try bytes("mqtt_max_packet_size", o.mqttMaxPacketSize, default: d.maxPacketBytes)
        guard maxPacket >= 64 && maxPacket <= 268_435_460 else { throw ValidationError("mqtt_max_packet_size must be 64 B…256 MiB") }
        let inflight = try int("mqtt_max_inflight", o.mqttMaxInflight, default: d.maxInflight)
        guard (1...65_535).contains(inflight) else { throw ValidationError("mqtt_max_inflight must be 1…65535") }
        var c = d
        c.port = port
        c.maxPacketBytes = maxPacket
        c.maxInflight = inflight
        return c
    }
}
