import Crypto
import Foundation

/// Bearer tokens: `sft_<id>_<secret>`.
///
/// `id` is 16 hex digits (64 random bits), public: it names the credential in lists, audit lines and
/// attribution. `secret` is 256 random bits (base64url, 43 characters) from the system's CSPRNG; only its
/// SHA-256 is stored, and a presented token is checked by comparing digests in constant time (swift-crypto's
/// `Digest ==`). A plain hash suffices: the secret is random, not a password, so there is nothing to guess.
public enum Token {
    public static let prefix = "sft_"

    /// A new token and the parts kept of it.
    public static func generate() -> (token: String, id: String, secretSHA256: String) {
        let idBytes = SymmetricKey(size: .init(bitCount: 64)).withUnsafeBytes { Array($0) }
        let id = idBytes.map { String(format: "%02x", $0) }.joined()
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64URLEncoded()
        return (prefix + id + "_" + secret, id, hexDigest(secret))
    }

    /// Splits a presented token into its id and secret (`nil` when it is not shaped like one).
    public static func parse(_ token: String) -> (id: String, secret: Substring)? {
        guard token.hasPrefix(prefix) else { return nil }
        let rest = token.dropFirst(prefix.count)
        guard let sep = rest.firstIndex(of: "_") else { return nil }
        let id = rest[..<sep]
        let secret = rest[rest.index(after: sep)...]
        guard id.utf8.count == 16, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
            !secret.isEmpty, secret.utf8.count <= 128
        else { return nil }
        return (String(id), secret)
    }

    static func hexDigest(_ secret: some StringProtocol) -> String {
        SHA256.hash(data: Array(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `secret` hashes to `storedHex`, compared in constant time.
    static func matches(_ secret: Substring, storedHex: String) -> Bool {
        guard let stored = Data(hex: storedHex) else { return false }
        return SHA256.hash(data: Array(secret.utf8)) == stored
    }
}

extension Data {
    func base64URLEncoded() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    init?(hex: String) {
        guard hex.utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(hex.utf8.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let b = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(b)
            index = next
        }
        self.init(bytes)
    }
}
