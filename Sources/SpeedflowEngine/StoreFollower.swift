import Foundation
import Logging
import SpeedflowAggregation
import SpeedflowStore
import Synchronization

/// An API node's `CameraView`: other processes (aggregators) write the store, so the camera list is learnt from
/// it — at most once a second, or every 200 ms when asked for a camera it does not know (which an aggregator
/// may just have written). It holds no buckets: every number comes from the store.
public final class StoreFollower: CameraView {
    let store: any StoreReader
    let logger: Logger
    let clock: @Sendable () -> Int64
    /// Cameras only: the table never applies a record here.
    let table: Mutex<BucketTable>
    let lastRefreshMs = Mutex<Int64>(0)

    public init(
        store: any StoreReader, logger: Logger = Logger(label: "speedflow.api"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.store = store
        self.logger = logger
        self.clock = clock
        self.table = Mutex(BucketTable(policy: .overwrite, logOffset: 0, cameras: try store.cameras()))
        lastRefreshMs.withLock { $0 = clock() }
    }

    public func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])? {
        if let known = table.withLock({ $0.hotStates(kvfvId: kvfvId, buckets: range) }) { return known }
        refresh(every: 200)
        return table.withLock { $0.hotStates(kvfvId: kvfvId, buckets: range) }
    }

    public func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow] {
        refresh(every: 1000)
        return table.withLock { $0.cameraRows(countsFrom: lowest, current: current) }
    }

    public func cameraPage(
        _ request: CameraPageRequest, countsFrom lowest: Int64, current: Int64, matches: (BucketTable.Camera) -> Bool
    ) -> CameraRowPage {
        refresh(every: 1000)
        return table.withLock { $0.cameraPage(request, countsFrom: lowest, current: current, matches: matches) }
    }

    public func sequences(_ cameras: [Int64]) throws -> [Int64: CameraSequence] {
        try store.sequences(cameras: cameras)
    }

    /// Learns cameras the store has, and their newest times, if the last refresh is `everyMs` old.
    func refresh(every everyMs: Int64) {
        let now = clock()
        let due = lastRefreshMs.withLock { last -> Bool in
            guard now - last >= everyMs else { return false }
            last = now
            return true
        }
        guard due else { return }
        do {
            let records = try store.cameras()
            table.withLock { $0.learn(records) }
        } catch {
            logger.warning("Camera refresh from the store failed", metadata: ["error": "\(error)"])
        }
    }
}
