// libFuzzer target over the MQTT packet decoder (Sources/SpeedflowMQTT/Codec): a byte stream as a client would send
// it to Speedflow's listener (or a server to a client), decoded packet by packet until it ends or fails.
//
// Not part of any SwiftPM target: `scripts/fuzz-mqtt` compiles this file with Sources/SpeedflowMQTT/Codec/*.swift
// into one module with `-sanitize=fuzzer,address` (the codec has no dependencies, so its internals are visible).
//
// An input is one mode byte, then the stream. Mode bits 0–1: the decoder's version — 0 and 3 a server's (none
// until a CONNECT names one), 1 MQTT 3.1.1, 2 MQTT 5; bits 2–3: the maximum packet size (64 B, 1 KiB, 64 KiB,
// 1 MiB). A failing input replays with `.build-fuzz-mqtt/mqtt-fuzzer FILE`.
//
// What counts as a finding (the process aborts, libFuzzer saves the input):
// - for a decoded packet p of n bytes: encode(p) does not decode to exactly p (all of it, nothing left over), or
//   re-encoding that gives other bytes; encode(p) is longer than the n bytes p came from (the decoder made
//   something up); a strict prefix of the n bytes decodes to anything but "need more bytes";
// - the decoder reports a packet longer than the input, or over the maximum packet size; a packetTooLarge error
//   for a packet whose header does not exceed the maximum; an error with an empty message;
// - and from libFuzzer/ASan: crashes (including Swift's bounds and overflow traps), reads past the input (libFuzzer
//   hands the input over in an allocation of exactly its size), timeouts (hangs), memory over -rss_limit_mb.

import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func mqttFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let mode = data[0]
    let version: MQTTVersion? = switch mode & 0x03 {
    case 1: .v3_1_1
    case 2: .v5
    default: nil
    }
    let maxPacketSize = [64, 1024, 65_536, 1 << 20][Int(mode >> 2) & 0x03]
    var decoder = MQTTDecoder(maxPacketSize: maxPacketSize, version: version)
    var stream = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    while !stream.isEmpty {
        let result: (packet: MQTTPacket, length: Int)?
        let versionBefore = decoder.version
        do {
            result = try decoder.decode(stream)
        } catch {
            checkError(error, stream, maxPacketSize: maxPacketSize)
            return 0
        }
        guard let (packet, length) = result else { return 0 }
        guard length > 0, length <= stream.count, length <= maxPacketSize else {
            fail("decoded a packet of \(length) bytes from \(stream.count) bytes (maximum \(maxPacketSize))", stream)
        }
        let original = UnsafeRawBufferPointer(rebasing: stream[0..<length])
        checkRoundTrip(packet, original: original, version: versionBefore, maxPacketSize: maxPacketSize)
        stream = UnsafeRawBufferPointer(rebasing: stream[length...])
    }
    return 0
}

/// The decoded packet survives encode → decode unchanged, encoding is stable, and nothing was invented.
func checkRoundTrip(_ packet: MQTTPacket, original: UnsafeRawBufferPointer, version: MQTTVersion?, maxPacketSize: Int) {
    let encodeVersion: MQTTVersion
    if case .connect(let c) = packet {
        encodeVersion = c.version
    } else if let version {
        encodeVersion = version
    } else {
        fail("a \(packet.type) decoded before any version was known", original)
    }
    let bytes = packet.encode(version: encodeVersion)
    guard bytes.count <= original.count else {
        fail("\(packet.type) re-encodes to \(bytes.count) bytes, more than the \(original.count) it was decoded from", original)
    }
    var again = MQTTDecoder(maxPacketSize: maxPacketSize, version: version)
    let decoded: (packet: MQTTPacket, length: Int)?
    do {
        decoded = try bytes.withUnsafeBytes { raw in try again.decode(raw) }
    } catch {
        fail("the re-encoded \(packet.type) fails to decode: \(error)\npacket: \(packet)", original)
    }
    guard let decoded, decoded.length == bytes.count, decoded.packet == packet else {
        fail("decode(encode(p)) != p for \(packet.type)\np:     \(packet)\nagain: \(String(describing: decoded))", original)
    }
    guard decoded.packet.encode(version: encodeVersion) == bytes else { fail("encoding \(packet.type) is not stable", original) }
    // Incomplete packets ask for more bytes, whatever their content.
    for cut in [1, 2, original.count / 2, original.count - 1] where cut > 0 && cut < original.count {
        var partial = MQTTDecoder(maxPacketSize: maxPacketSize, version: version)
        let prefix = UnsafeRawBufferPointer(rebasing: original[0..<cut])
        let r: (packet: MQTTPacket, length: Int)?
        do {
            r = try partial.decode(prefix)
        } catch {
            fail("a \(cut)-byte prefix of a valid \(packet.type) fails: \(error)", original)
        }
        if r != nil { fail("a \(cut)-byte prefix of a valid \(packet.type) decodes to a packet", original) }
    }
}

func checkError(_ error: MQTTError, _ stream: UnsafeRawBufferPointer, maxPacketSize: Int) {
    guard !error.message.isEmpty else { fail("an error without a message: \(error.code)", stream) }
    if error.code == .packetTooLarge {
        // The header must really declare more than the maximum.
        var value = 0
        var shift = 0
        var n = 1
        while n < stream.count && n <= 4 {
            value |= Int(stream[n] & 0x7F) << shift
            if stream[n] & 0x80 == 0 { break }
            shift += 7
            n += 1
        }
        guard 1 + n + value > maxPacketSize else {
            fail("packetTooLarge for a packet of \(1 + n + value) bytes (maximum \(maxPacketSize))", stream)
        }
    }
}

/// Reports a finding and aborts, so libFuzzer keeps the input.
func fail(_ message: String, _ bytes: UnsafeRawBufferPointer) -> Never {
    let shown = bytes.prefix(512).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
    FileHandle.standardError.write(Data(
        "\n==== MQTTFuzzer finding ====\n\(message)\nbytes (\(bytes.count)): \(shown)\(bytes.count > 512 ? " …" : "")\n".utf8))
    abort()
}
