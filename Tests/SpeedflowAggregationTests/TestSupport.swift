import Foundation

/// `|a − b| ≤ rel · max(|a|, |b|)` (or both tiny).
func close(_ a: Double?, _ b: Double?, rel: Double = 1e-9, abs tiny: Double = 1e-12) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return Swift.abs(a - b) <= Swift.max(rel * Swift.max(Swift.abs(a), Swift.abs(b)), tiny)
}
