#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// glibc's allocator, set for a server that answers from large, short-lived buffers.
///
/// A camera-day answer at 5 minutes is ~160 KB of JSON, rendered into one buffer and copied into the response.
/// With glibc's defaults such a buffer lands above the heap's trim threshold (128 KiB) or its dynamic mmap
/// threshold, so every request maps fresh pages and returns them: ~100 page faults per request, a quarter of the
/// server's CPU for that query (`perf stat -e page-faults`: 52,967 faults for 500 requests; 11 with this). Keeping
/// up to 64 MiB of freed memory per arena and allocating below 16 MiB from the heap makes the pages stay mapped.
/// RSS then holds the peak of what requests used, not more. An operator's own `MALLOC_TRIM_THRESHOLD_` or
/// `MALLOC_MMAP_THRESHOLD_` (glibc's environment tunables) wins.
public enum MemoryTuning {
    public static let trimThreshold: Int32 = 64 << 20
    public static let mmapThreshold: Int32 = 16 << 20

    /// Once, before the server starts.
    public static func keepFreedMemory() {
        #if canImport(Glibc)
        let environment = ProcessInfo.processInfo.environment
        guard environment["MALLOC_TRIM_THRESHOLD_"] == nil, environment["MALLOC_MMAP_THRESHOLD_"] == nil,
            environment["GLIBC_TUNABLES"] == nil
        else { return }
        // Swift's Glibc module leaves out <malloc.h>: the function by name, its options by their values there.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        _ = mallopt(-3, mmapThreshold)  // M_MMAP_THRESHOLD
        _ = mallopt(-1, trimThreshold)  // M_TRIM_THRESHOLD
        #endif
    }
}
