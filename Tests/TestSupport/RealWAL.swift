// Real WAL segments from a throwaway cluster, for the tests of the WAL reader (WALRecords.swift) and of
// the tools that use it, with pg_waldump's reading of each as the reference.
//
// Like the WAL a production server archives, in 1 MB segments (`initdb --wal-segsize=1`) so that it is
// quick to make: a segment closed early by pg_switch_wal(), segments filled under load (full-page
// images, records spanning pages, one record of 3 MB spanning whole segments), then an archive recovery
// that ends in a new timeline, which gives the old timeline's `.partial` and the new timeline's first
// segment, whose first page still carries the old timeline (docs/server-rules.md §3.4).

import Foundation
import WalferryCore

/// The files a cluster archived (with `cp`), by name.
public struct RealWAL: Sendable {
    public let version: Int
    public let installation: PostgresInstallation
    /// Segments and `.partial` files, by name.
    public let files: [String: [UInt8]]

    /// Makes a cluster of PostgreSQL `version`, runs the workload above, and reads its archive.
    public static func make(version: Int) throws -> RealWAL {
        let installation = try PostgresInstallation.version(version)
        let cluster = try PostgresCluster(installation: installation, name: "realwal\(version)", initdbArguments: ["--wal-segsize=1"])
        let archive = try cluster.folder.makeDirectory("archive", mode: 0o700)
        try handToPostgresUser(archive)
        try cluster.appendSettings(["archive_mode": "on", "archive_command": "'cp %p \(archive)/%f'",
                                    "min_wal_size": "'4MB'", "max_wal_size": "'64MB'"])
        try cluster.start()
        func archived(_ name: String) throws {
            try waitUntil("\(name) is archived", timeout: 60) { FileManager.default.fileExists(atPath: archive + "/" + name) }
        }
        func switchAndWait() throws {
            let name = try cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
            try cluster.sql("SELECT pg_switch_wal()")
            try archived(name)
        }
        try cluster.sql("CREATE TABLE t (a int, b text)")
        try cluster.sql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g")
        try switchAndWait()
        try cluster.sql("CHECKPOINT")
        try cluster.sql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
        try cluster.sql("SELECT pg_logical_emit_message(false, 'walferry', repeat('y', 3000000))")
        try cluster.sql("CHECKPOINT")
        try cluster.sql("UPDATE t SET a = a + 1 WHERE a % 3 = 0")
        try switchAndWait()

        // An archive recovery to the end of the archive and of pg_wal: a new timeline.
        try cluster.stop()
        try writeFile(cluster.dataDirectory + "/recovery.signal", [])
        try handToPostgresUser(cluster.dataDirectory + "/recovery.signal", recursive: false)
        try cluster.appendSettings(["restore_command": "'cp \(archive)/%f %p'"])
        try cluster.start()
        try waitUntil("the server is promoted", timeout: 60) { try cluster.sql("SELECT pg_is_in_recovery()") == "f" }
        try cluster.sql("INSERT INTO t SELECT g, repeat('z', 100) FROM generate_series(1, 2000) g")
        try switchAndWait()
        try waitUntil("a .partial is archived", timeout: 60) {
            try listDirectory(archive).contains { $0.hasSuffix(".partial") }
        }
        try cluster.stop()

        var files: [String: [UInt8]] = [:]
        for name in try listDirectory(archive) {
            guard let parsed = WALFileName(name), parsed.holdsWAL else { continue }
            files[name] = try readFile(archive + "/" + name)
        }
        return RealWAL(version: version, installation: installation, files: files)
    }
}

/// One record as pg_waldump lists it.
public struct DumpedRecord: Sendable, Equatable {
    public let lsn: UInt64
    public let totalLength: Int
}

/// What pg_waldump makes of one segment alone in a folder: the records it lists, and its error.
public struct WALDump: Sendable {
    public let records: [DumpedRecord]
    public let error: String?

    /// The last `%X/%X` in pg_waldump's error: the bad record's or page's LSN.
    public var errorLSN: UInt64? {
        guard let error else { return nil }
        let words = error.split(whereSeparator: { $0 == " " || $0 == "," || $0 == ":" })
        return words.reversed().lazy.compactMap { parseLSN($0) }.first
    }
}

/// Runs `installation`'s pg_waldump on `bytes`, named `name`, alone in a folder (so that it cannot
/// read on into another segment).
public func walDump(_ installation: PostgresInstallation, name: String, bytes: [UInt8], quiet: Bool = false) throws -> WALDump {
    let folder = try TemporaryDirectory(prefix: "walferry-waldump")
    try writeFile(folder.join(name), bytes)
    let outcome = try runProcess(installation.tool("pg_waldump"), (quiet ? ["-q"] : []) + ["-p", folder.path, name])
    var records: [DumpedRecord] = []
    for line in outcome.stdout.split(separator: "\n") {
        // "rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/01000028, prev 0/00FFFFD0, desc: ..."
        guard let lengths = line.range(of: "len (rec/tot):"), let lsnRange = line.range(of: ", lsn: ") else { continue }
        let total = line[lengths.upperBound...].split(separator: ",").first?.split(separator: "/").last
        let lsnText = line[lsnRange.upperBound...].split(separator: ",").first
        if let total, let length = Int(total.trimmingCharacters(in: .whitespaces)), let lsnText, let lsn = parseLSN(lsnText) {
            records.append(DumpedRecord(lsn: lsn, totalLength: length))
        }
    }
    var error: String?
    if let range = outcome.stderr.range(of: "error: ") {
        error = String(outcome.stderr[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return WALDump(records: records, error: error)
}
