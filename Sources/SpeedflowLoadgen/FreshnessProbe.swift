import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import Synchronization

/// Measures freshness: the time from an event's acknowledgement to its first appearance in a query answer.
///
/// Once per interval the probe asks the workers for one sample; the next worker to get an event acked hands
/// over the camera, the event's 5-minute bucket and the number of acked events the oracle holds for that
/// bucket. The event is visible once the server's count for the window reaches that number (every event the
/// oracle counts is acked and so durable; the server may hold more, never fewer).
final class FreshnessProbe: Sendable {
    struct Sample: Sendable {
        var cameraId: String
        var bucket: Int64
        var expectedCount: Int
        var ackedAt: ContinuousClock.Instant
    }

    struct Result: Sendable {
        var histogram = LoadStats.makeHistogram()
        var samples = 0
        var neverVisible = 0
        var queryErrors = 0
    }

    /// Set by the ticker, cleared by the worker that takes the sample.
    let wanted = Atomic<Bool>(false)
    private let stream: AsyncStream<Sample>
    private let continuation: AsyncStream<Sample>.Continuation
    private let client: HTTPClient
    private let baseURL: String
    private let interval: Duration
    /// How long to keep polling before declaring a sample never visible.
    private let giveUpAfter: Duration

    /// `Authorization` for the queries (a reader or admin token), if the server requires one.
    private let authorization: String?

    init(client: HTTPClient, baseURL: String, interval: Duration, authorization: String? = nil, giveUpAfter: Duration = .seconds(30)) {
        self.authorization = authorization
        (stream, continuation) = AsyncStream.makeStream(of: Sample.self, bufferingPolicy: .bufferingNewest(4))
        self.client = client
        self.baseURL = baseURL
        self.interval = interval
        self.giveUpAfter = giveUpAfter
    }

    /// Called by a worker right after an ack that added events to its oracle.
    func offer(_ sample: @autoclosure () -> Sample) {
        if wanted.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
            continuation.yield(sample())
        }
    }

    func finish() {
        continuation.finish()
    }

    /// Ticks and probes until `finish()`; returns the measured delays.
    func run() async -> Result {
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wanted.store(true, ordering: .relaxed)
            }
        }
        defer { ticker.cancel() }
        var result = Result()
        for await sample in stream {
            await probe(sample, into: &result)
        }
        return result
    }

    private func probe(_ sample: Sample, into result: inout Result) async {
        let from = UTCTime.string(millis: sample.bucket * UTCTime.millisPerBucket)
        let to = UTCTime.string(millis: (sample.bucket + 1) * UTCTime.millisPerBucket)
        let url = "\(baseURL)/kvfv/\(sample.cameraId)/avg-speed?from=\(from)&to=\(to)&interval=5m"
        let clock = ContinuousClock()
        let deadline = sample.ackedAt + giveUpAfter
        while clock.now < deadline {
            do {
                var request = HTTPClientRequest(url: url)
                if let authorization { request.headers.add(name: "Authorization", value: authorization) }
                let response = try await client.execute(request, timeout: .seconds(10))
                let body = try await response.body.collect(upTo: 1 << 20)
                let seenAt = clock.now
                if response.status == .ok,
                   let windows = MiniJSON.parse(body)?["windows"]?.array,
                   let count = windows.first?["count"]?.int {
                    if count >= sample.expectedCount {
                        let micros = (seenAt - sample.ackedAt).microseconds
                        _ = result.histogram.record(UInt64(max(1, micros)))
                        result.samples += 1
                        return
                    }
                } else {
                    result.queryErrors += 1
                }
            } catch {
                result.queryErrors += 1
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        result.neverVisible += 1
    }
}

extension Duration {
    var microseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000 + atto / 1_000_000_000_000
    }
}
