import ArgumentParser
import Foundation
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowRuntime

/// `--registry`: the camera registry file of the HTTP roles that serve it (`serve`, `api`).
struct RegistryOptions: ParsableArguments {
    @Option(help: "Camera registry file this node answers /registry from and writes PUT /kvfv/{id}/registry to, re-read every second. Scale-out api nodes share one file, as with --credentials. Default: <data dir>/cameras.json. Env: SPEEDFLOW_REGISTRY.")
    var registry: String?
}

extension Settings {
    func registry(_ o: RegistryOptions) -> RegistryConfiguration {
        RegistryConfiguration(file: flagOrSetting("registry", o.registry))
    }
}

/// Where `cameras` commands find the registry: `--registry`, else `<--data-dir>/cameras.json`.
struct RegistryLocation: ParsableArguments {
    @Option(help: "Data directory whose cameras.json to use. Default: \(DataDirectory.defaultPath). Env: SPEEDFLOW_DATA_DIR.")
    var dataDir: String?

    @Option(help: "Registry file to use instead (e.g. the one scale-out api nodes share). Env: SPEEDFLOW_REGISTRY.")
    var registry: String?

    func open() async throws -> CameraRegistry {
        let settings = try await Settings.load(configFile: nil)
        let path = RegistryConfiguration(file: settings.flagOrSetting("registry", registry))
            .path(dataDir: dataDir ?? settings.reader.string(forKey: "data_dir") ?? DataDirectory.defaultPath)
        return try CamerasCommand.run { () throws(RegistryError) in try CameraRegistry(path: path) }
    }
}

struct CamerasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cameras",
        abstract: "Manage the camera registry: names, roads, positions, speed limits and their history, lanes, time zones.",
        discussion: """
            The registry is a JSON file, by default <data dir>/cameras.json; servers (serve, api) re-read it every \
            second, so these commands work while they run. Writes take the file's lock and replace it atomically; \
            each is appended to audit.log next to the file. Cameras not in the registry work as before.

            Examples:
              speedflow cameras set KV00001 --name 'A-107 km 42 N' --road A-107 \\
                  --km 42.3 --latitude 55.75 --longitude 37.62 --limit 90 \\
                  --lanes 3 --time-zone Europe/Moscow
              speedflow cameras set KV00001 --limit 70 \\
                  --limit-from 2025-06-01T00:00:00Z     (70 from then on)
              speedflow cameras import cameras.csv
              speedflow cameras export --format geojson --output cameras.geojson
              speedflow cameras list
              speedflow cameras remove KV00001
            """,
        subcommands: [List.self, Set.self, Remove.self, Import.self, Export.self])

    /// Runs a registry operation, turning its error into a message for the command line.
    static func run<T>(_ body: () throws(RegistryError) -> T) throws -> T {
        do throws(RegistryError) {
            return try body()
        } catch {
            throw ValidationError("\(error.message) (reason: \(error.reason))")
        }
    }

    /// Appends a change to audit.log next to the registry file (where the credentials' changes are, by default).
    static func audit(_ registry: CameraRegistry, _ entry: [String: String]) {
        var entry = entry
        entry["time"] = CredentialAdmin.timestamp()
        entry["actor"] = TokenCommand.actor
        do throws(CredentialError) {
            try AuditLog.append(entry, nextTo: registry.path)
        } catch {
            FileHandle.standardError.write(Data("warning: the change is made but could not be audited: \(error.message)\n".utf8))
        }
    }

    static func format(_ text: String?, path: String?) throws -> RegistryIO.Format {
        guard let text else { return path.map { RegistryIO.Format.guess(path: $0) } ?? .json }
        guard let format = RegistryIO.Format(rawValue: text.lowercased()) else {
            throw ValidationError("--format must be csv, geojson or json, not '\(text)'")
        }
        return format
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered cameras (with the limit in force now).")

        @OptionGroup var location: RegistryLocation

        func run() async throws {
            let registry = try await location.open()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
            print(pad("KVFV_ID", 18) + pad("LIMIT", 6) + pad("LANES", 6) + pad("ROAD", 12) + pad("DIR", 5) + pad("KM", 9) + pad("TIME_ZONE", 20) + "NAME")
            for c in registry.all() {
                let km = c.kilometre.map { Settings.formatNumber($0) } ?? ""
                print(
                    pad(c.kvfvId, 18) + pad(c.limit(atMs: now).map(String.init) ?? "", 6) + pad(c.lanes.map(String.init) ?? "", 6)
                        + pad(c.road ?? "", 12) + pad(c.direction ?? "", 5) + pad(km, 9) + pad(c.timeZone ?? "", 20)
                        + (c.name ?? "").replacingOccurrences(of: "\n", with: " "))
            }
            FileHandle.standardError.write(Data("\(registry.count) cameras in \(registry.path)\n".utf8))
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a camera or change some of its fields (the others are kept).",
            discussion: """
                --limit without --limit-from makes that the camera's only limit, in force since ever. With \
                --limit-from (an RFC 3339 time on a 5-minute boundary of UTC, e.g. 2025-06-01T00:00:00Z) it is added to \
                the history from that time on (replacing a limit that started at the same time): earlier windows keep \
                the earlier limit. --clear FIELD removes a field (name, road, direction, km, position, limits, lanes, \
                time_zone, expected_daily_volume).
                """)

        @OptionGroup var location: RegistryLocation

        @Argument(help: "The camera's id (as in its events' kvfv_id).") var kvfvId: String

        @Option(help: "A name for people, e.g. 'A-107 km 42 northbound'.") var name: String?
        @Option(help: "The road, e.g. A-107.") var road: String?
        @Option(help: "The direction of travel, e.g. N, northbound, towards Moscow.") var direction: String?
        @Option(help: "Kilometre marker along the road.") var km: Double?
        @Option(help: "Latitude, degrees (WGS 84, -90…90); needs --longitude.") var latitude: Double?
        @Option(help: "Longitude, degrees (WGS 84, -180…180); needs --latitude.") var longitude: Double?
        @Option(help: "Speed limit, whole km/h (5…300).") var limit: Int?
        @Option(help: "When --limit takes effect (RFC 3339, on a 5-minute boundary of UTC). Default: since ever, replacing the history.")
        var limitFrom: String?
        @Option(help: "Number of lanes (1…16).") var lanes: Int?
        @Option(help: "IANA time zone of the camera's local days, e.g. Europe/Moscow.") var timeZone: String?
        @Option(help: "Vehicles the camera sees on an ordinary day (1…100000000).") var expectedDailyVolume: Int?
        @Option(help: "A field to remove; repeatable.") var clear: [String] = []

        func run() async throws {
            let registry = try await location.open()
            var info = registry.info(kvfvId) ?? CameraInfo(kvfvId: kvfvId)
            for field in clear {
                switch field {
                case "name": info.name = nil
                case "road": info.road = nil
                case "direction": info.direction = nil
                case "km": info.kilometre = nil
                case "position", "latitude", "longitude": (info.latitude, info.longitude) = (nil, nil)
                case "limits", "speed_limits", "limit": info.limits = []
                case "lanes": info.lanes = nil
                case "time_zone": info.timeZone = nil
                case "expected_daily_volume": info.expectedDailyVolume = nil
                default: throw ValidationError("--clear takes name, road, direction, km, position, limits, lanes, time_zone or expected_daily_volume, not '\(field)'")
                }
            }
            if let name { info.name = name }
            if let road { info.road = road }
            if let direction { info.direction = direction }
            if let km { info.kilometre = km }
            if let latitude { info.latitude = latitude }
            if let longitude { info.longitude = longitude }
            if let lanes { info.lanes = lanes }
            if let timeZone { info.timeZone = timeZone }
            if let expectedDailyVolume { info.expectedDailyVolume = expectedDailyVolume }
            switch (limit, limitFrom) {
            case (nil, nil): break
            case (nil, .some): throw ValidationError("--limit-from needs --limit")
            case (let kmh?, nil): info.limits = [SpeedLimit(kmh: kmh)]
            case (let kmh?, let text?):
                guard let from = Timestamp.parse(text) else {
                    throw ValidationError("--limit-from must be an RFC 3339 time such as 2025-06-01T00:00:00Z, not '\(text)'")
                }
                info.limits.removeAll { $0.fromMs == from }
                info.limits.append(SpeedLimit(kmh: kmh, fromMs: from))
                info.limits.sort { ($0.fromMs ?? .min) < ($1.fromMs ?? .min) }
            }
            try CamerasCommand.run { () throws(RegistryError) in try registry.put(info) }
            CamerasCommand.audit(registry, ["action": "registry_put", "kvfv": kvfvId])
            print(RegistryJSON.object(registry.info(kvfvId) ?? info, nowMs: Int64(Date().timeIntervalSince1970 * 1000)))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a camera from the registry (its events and statistics stay).")

        @OptionGroup var location: RegistryLocation

        @Argument(help: "The camera's id.") var kvfvId: String

        func run() async throws {
            let registry = try await location.open()
            guard try CamerasCommand.run({ () throws(RegistryError) in try registry.remove(kvfvId) }) else {
                throw ValidationError("camera \(kvfvId) is not in the registry \(registry.path)")
            }
            CamerasCommand.audit(registry, ["action": "registry_remove", "kvfv": kvfvId])
            print("removed \(kvfvId) from \(registry.path)")
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import cameras from CSV, GeoJSON or JSON: all of them, or on the first error none.",
            discussion: """
                CSV: a header line naming some of the columns \(RegistryIO.csvColumns.joined(separator: ",")) \
                (kvfv_id required), then one row per limit period: a camera on several rows is its limit history, and \
                its rows must agree on the other fields. RFC 4180 quoting ("A-107, km 42" and "" for a quote).
                GeoJSON: a FeatureCollection of Point features ([longitude, latitude]; null geometry: no position) whose \
                properties hold the other fields and speed_limits: [{"kmh": 90, "from": null}, …].
                JSON: {"cameras": [...]} as GET /registry and `cameras export` write it.
                Imported cameras are added or replace the registered ones with the same id; with --replace the file \
                becomes the whole registry. Errors name the line (CSV), feature (GeoJSON) or camera (JSON).
                """)

        @OptionGroup var location: RegistryLocation

        @Argument(help: "The file to import ('-': standard input).") var file: String

        @Option(help: "csv, geojson or json. Default: from the file's extension (.csv, .geojson), else json.") var format: String?

        @Flag(help: "Make the imported cameras the whole registry (others are removed).") var replace = false

        @Flag(help: "Check the file only; change nothing.") var dryRun = false

        func run() async throws {
            let format = try CamerasCommand.format(format, path: file == "-" ? nil : file)
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            let cameras = try CamerasCommand.run { () throws(RegistryError) in try RegistryIO.import(data, format: format) }
            let registry = try await location.open()
            if dryRun {
                print("\(file): \(cameras.count) valid cameras (nothing changed)")
                return
            }
            let new = cameras.count { registry.info($0.kvfvId) == nil }
            let before = registry.count
            try CamerasCommand.run { () throws(RegistryError) in
                if replace { try registry.replaceAll(cameras) } else { try registry.put(cameras) }
            }
            CamerasCommand.audit(
                registry, ["action": replace ? "registry_replace" : "registry_import", "cameras": String(cameras.count), "file": file])
            let removed = replace ? before - (cameras.count - new) : 0
            print("imported \(cameras.count) camera\(cameras.count == 1 ? "" : "s") into \(registry.path): \(new) new, \(cameras.count - new) replaced\(replace ? ", \(removed) removed" : "")")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export the registry as CSV, GeoJSON or JSON (what `cameras import` reads back).")

        @OptionGroup var location: RegistryLocation

        @Option(help: "csv, geojson or json. Default: from --output's extension, else json.") var format: String?

        @Option(help: "Write to this file instead of standard output.") var output: String?

        func run() async throws {
            let format = try CamerasCommand.format(format, path: output)
            let registry = try await location.open()
            let text = RegistryIO.export(registry.all(), format: format, nowMs: Int64(Date().timeIntervalSince1970 * 1000))
            if let output {
                try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
                FileHandle.standardError.write(Data("exported \(registry.count) cameras to \(output)\n".utf8))
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
    }
}
