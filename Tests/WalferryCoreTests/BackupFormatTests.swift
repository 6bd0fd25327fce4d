// The pieces of walferry-backup that need no server: the push-style bzip2 writer (same bytes as the
// pull engine), SHA-256, tar headers read back by GNU tar and bsdtar, the server's exclusion rules,
// the walk of a crafted data directory, the manifest's exact layout, labelfile parsing, the WAL range,
// output names, the lock and retention.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

@Suite struct BackupFormatTests {
    // MARK: - BZip2Writer

    /// Pushes `input` through a BZip2Writer in pieces of `piece` bytes, into a temporary file.
    static func pushCompress(_ input: [UInt8], piece: Int, level: Int = 9, jobs: Int = 2, tuning: BZip2Tuning = BZip2Tuning()) throws -> [UInt8] {
        let folder = try TemporaryDirectory()
        let path = folder.join("out.bz2")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        let writer = try BZip2Writer(to: fd, level: level, jobs: jobs, tuning: tuning)
        defer { writer.close() }
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + max(1, piece))
            try input[offset..<end].withUnsafeBytes { try writer.write($0) }
            offset = end
        }
        try writer.finish()
        #expect(writer.bytesIn == UInt64(input.count))
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test(arguments: [0, 1, 999, 1000, 1001, 5000, 12_345])
    func writerMatchesThePullEngine(size: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let input = (0..<size).map { index in index % 7 == 0 ? UInt8.random(in: 0...255, using: &generator) : UInt8(index % 13) }
        var tuning = BZip2Tuning()
        tuning.blockSize = 1000
        let expected = try BZip2.compress(input, level: 9, jobs: 2, tuning: tuning)
        for piece in [1, 7, 1000, 4096] {
            #expect(try Self.pushCompress(input, piece: piece, tuning: tuning) == expected, "piece \(piece)")
        }
        #expect(try BZip2.decompress(expected) == input)
    }

    @Test func writerMatchesThePullEngineOnRealBlockSizes() throws {
        let input = (0..<2_100_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        #expect(try Self.pushCompress(input, piece: 65_536, level: 1) == BZip2.compress(input, level: 1, jobs: 2))
    }

    @Test func writerZerosAreZeros() throws {
        let folder = try TemporaryDirectory()
        let path = folder.join("z.bz2")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd) }
        var tuning = BZip2Tuning()
        tuning.blockSize = 100
        let writer = try BZip2Writer(to: fd, level: 9, jobs: 1, tuning: tuning)
        try ([1, 2, 3] as [UInt8]).withUnsafeBytes { try writer.write($0) }
        try writer.writeZeros(250)
        try writer.finish()
        writer.close()
        let output = try BZip2.decompress([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(output == [1, 2, 3] + [UInt8](repeating: 0, count: 250))
    }

    // MARK: - SHA-256

    @Test func sha256MatchesKnownVectorsAndSha256sum() throws {
        #expect(SHA256.hexDigest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hexDigest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        for size in [55, 56, 63, 64, 65, 1000, 100_003] {
            let input = (0..<size).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }
            let outcome = try runProcess("/usr/bin/sha256sum", [], input: input)
            #expect(SHA256.hexDigest(input) == String(outcome.stdout.prefix(64)), "size \(size)")
        }
    }

    // MARK: - Tar headers

    /// A tar made of headers and contents, read back by GNU tar and bsdtar.
    @Test func tarHeadersReadBackWithGNUTarAndBsdtar() throws {
        let folder = try TemporaryDirectory()
        let short = "base/1/1259"
        let splittable = String(repeating: "d", count: 90) + "/" + String(repeating: "e", count: 60) + "/file"
        let unsplittable = String(repeating: "x", count: 120) + "/" + String(repeating: "y", count: 130)
        let longTarget = "/" + String(repeating: "t", count: 150)
        var tar: [UInt8] = []
        func add(_ header: TarHeader, _ contents: [UInt8] = []) {
            tar += header.encoded() + contents + [UInt8](repeating: 0, count: tarPadding(UInt64(contents.count)))
        }
        add(TarHeader(path: Array("base".utf8), type: .directory, mode: 0o700, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000))
        add(TarHeader(path: Array("base/1".utf8), type: .directory, mode: 0o750, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000))
        add(TarHeader(path: Array(short.utf8), type: .regular, mode: 0o640, uid: 0, gid: 0, size: 5, mtime: 1_600_000_000), Array("hello".utf8))
        add(TarHeader(path: Array(splittable.utf8), type: .regular, mode: 0o600, uid: 0, gid: 0, size: 3, mtime: 1_600_000_001), [1, 2, 3])
        add(TarHeader(path: Array(unsplittable.utf8), type: .regular, mode: 0o600, uid: 0, gid: 0, size: 600, mtime: 1_600_000_002),
            [UInt8](repeating: 7, count: 600))
        add(TarHeader(path: Array("link".utf8), type: .symbolicLink, mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1_600_000_003,
                      linkTarget: Array(longTarget.utf8)))
        tar += [UInt8](repeating: 0, count: tarEndOfArchiveSize)
        let tarPath = folder.join("t.tar")
        try writeFile(tarPath, tar)

        for tool in ["/bin/tar", "/usr/bin/bsdtar"] {
            #expect(FileManager.default.isExecutableFile(atPath: tool), "\(tool) missing: apt-get install tar libarchive-tools")
            let listing = try runProcess(tool, ["-tf", tarPath])
            #expect(listing.status == 0, "\(tool): \(listing)")
            let names = listing.stdoutLines
            #expect(names == ["base/", "base/1/", short, splittable, unsplittable, "link"], "\(tool): \(names)")
            let target = try folder.makeDirectory("x-" + URL(fileURLWithPath: tool).lastPathComponent)
            let extract = try runProcess(tool, ["-xpf", tarPath, "-C", target])
            #expect(extract.status == 0, "\(tool): \(extract)")
            #expect(try String(contentsOfFile: target + "/" + short, encoding: .utf8) == "hello")
            #expect(try Data(contentsOf: URL(fileURLWithPath: target + "/" + unsplittable)).count == 600)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/link") == longTarget)
            let attributes = try FileManager.default.attributesOfItem(atPath: target + "/" + short)
            #expect((attributes[.posixPermissions] as? Int) == 0o640)
            #expect((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 == 1_600_000_000)
            let directory = try FileManager.default.attributesOfItem(atPath: target + "/base/1")
            #expect((directory[.posixPermissions] as? Int) == 0o750)
        }
    }

    @Test func tarNumbersTooBigForOctalUseBase256() {
        #expect(TarHeader.numericField(0o777, width: 8) == Array("0000777".utf8) + [0])
        let big = TarHeader.numericField(9 << 30, width: 12)
        #expect(big[0] == 0x80)
        #expect(big.dropFirst().reduce(UInt64(0)) { $0 << 8 | UInt64($1) } == 9 << 30)
        #expect(TarHeader.paxRecord(key: Array("path".utf8), value: Array("a".utf8)) == Array("9 path=a\n".utf8))
        // 98 bytes of body: the length field grows from 2 to 3 digits.
        let record = TarHeader.paxRecord(key: Array("path".utf8), value: [UInt8](repeating: 0x61, count: 91))
        #expect(String(decoding: record.prefix(4), as: UTF8.self) == "101 " && record.count == 101)
    }

    // MARK: - Exclusions

    @Test func relationFileNames() {
        func parse(_ name: String) -> BackupExclusions.RelationFileName? { BackupExclusions.relationFileName(Array(name.utf8)) }
        #expect(parse("16384") == .init(relationNumber: Array("16384".utf8), fork: nil))
        #expect(parse("16384.2") == .init(relationNumber: Array("16384".utf8), fork: nil))
        #expect(parse("16384_fsm") == .init(relationNumber: Array("16384".utf8), fork: "fsm"))
        #expect(parse("16384_vm.1") == .init(relationNumber: Array("16384".utf8), fork: "vm"))
        #expect(parse("16384_init") == .init(relationNumber: Array("16384".utf8), fork: "init"))
        for bad in ["", "16384_", "16384_main", "16384.", "16384.a", "a16384", "16384_fsmx", "12345678901", "PG_VERSION"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
        for temporary in ["t3_99999", "t3_99999_fsm", "t12_5.1", "t1_2_init"] {
            #expect(BackupExclusions.isTemporaryRelation(Array(temporary.utf8)), "\(temporary)")
        }
        for other in ["t_1", "t3_", "t3x_1", "3_99999", "t3_99999_x", "t3_99999."] {
            #expect(!BackupExclusions.isTemporaryRelation(Array(other.utf8)), "\(other)")
        }
        let siblings: Set<[UInt8]> = Set(["16391", "16391_init", "16391_fsm", "16391.1", "16400"].map { Array($0.utf8) })
        #expect(BackupExclusions.isUnloggedRelationData(Array("16391".utf8), siblings: siblings))
        #expect(BackupExclusions.isUnloggedRelationData(Array("16391.1".utf8), siblings: siblings))
        #expect(BackupExclusions.isUnloggedRelationData(Array("16391_fsm".utf8), siblings: siblings))
        #expect(!BackupExclusions.isUnloggedRelationData(Array("16391_init".utf8), siblings: siblings))
        #expect(!BackupExclusions.isUnloggedRelationData(Array("16400".utf8), siblings: siblings))
        for name in ["postmaster.pid", "pg_internal.init", "pg_internal.init.123", "pgsql_tmp", "pgsql_tmp42", ".DS_Store",
                     "backup_label", "tablespace_map", "backup_manifest", "postmaster.opts", "postgresql.auto.conf.tmp",
                     "current_logfiles.tmp"] {
            #expect(BackupExclusions.skipsEverywhere(Array(name.utf8)), "\(name)")
        }
        for name in ["postgresql.auto.conf", "PG_VERSION", "pg_control", "backup_label.old", "current_logfiles"] {
            #expect(!BackupExclusions.skipsEverywhere(Array(name.utf8)), "\(name)")
        }
    }

    /// A crafted data directory: what the walk keeps, empties, skips and sets aside.
    @Test func walkOfACraftedDataDirectory() throws {
        let folder = try TemporaryDirectory()
        let data = try folder.makeDirectory("data", mode: 0o700)
        let files = [
            "PG_VERSION", "postmaster.pid", "postmaster.opts", "backup_label", "postgresql.conf", "global/pg_control",
            "global/1262", "global/pg_internal.init", "base/1/16384", "base/1/16384_init", "base/1/16384_fsm",
            "base/1/16390", "base/1/16390.1", "base/1/t3_99999", "base/1/pg_internal.init", "base/pgsql_tmp/pgsql_tmp1.0",
            "pg_wal/000000010000000000000001", "pg_wal/archive_status/000000010000000000000001.ready",
            "pg_stat_tmp/global.stat", "pg_replslot/slot/state", "pg_notify/0000", "pg_subtrans/0000", "pg_xact/0000",
            "pg_logical/snapshots/x", "somewhere/t3_99999",
        ]
        for file in files {
            let path = data + "/" + file
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try writeFile(path, [1, 2, 3])
        }
        try FileManager.default.createDirectory(atPath: data + "/pg_tblspc", withIntermediateDirectories: true)
        let location = try folder.makeDirectory("ts")
        try FileManager.default.createDirectory(atPath: location + "/PG_15_202209061/5", withIntermediateDirectories: true)
        try writeFile(location + "/PG_15_202209061/5/16500", [9])
        try writeFile(location + "/PG_15_202209061/5/t2_16501", [9])
        try writeFile(location + "/other-cluster-file", [9])
        try FileManager.default.createSymbolicLink(atPath: data + "/pg_tblspc/16400", withDestinationPath: location)
        try FileManager.default.createSymbolicLink(atPath: data + "/linked.conf", withDestinationPath: "/etc/hostname")

        var warnings: [String] = []
        let options = BackupTreeOptions(majorVersion: "15", catalogVersion: 202_209_061)
        let tree = try listDataDirectory(FilePath(data), options: options) { warnings.append($0) }
        let names = tree.entries.map { entry -> String in
            let name = entry.tarPath.description
            if case .directory = entry.kind { return name + "/" }
            return name
        }
        #expect(names == [
            "PG_VERSION", "base/", "base/1/", "base/1/16384_init", "base/1/16390", "base/1/16390.1",
            "global/", "global/1262", "pg_logical/", "pg_logical/snapshots/", "pg_logical/snapshots/x",
            "pg_notify/", "pg_replslot/", "pg_stat_tmp/", "pg_subtrans/", "pg_tblspc/",
            "pg_wal/", "pg_wal/archive_status/", "pg_xact/", "pg_xact/0000", "postgresql.conf",
            "somewhere/", "somewhere/t3_99999",
        ])
        #expect(tree.controlFile.map { $0.tarPath.description } == "global/pg_control")
        #expect(tree.tablespaces == [Tablespace(oid: Array("16400".utf8), location: FilePath(location))])
        #expect(warnings == ["skipping special file \"\(data)/linked.conf\""])

        let tablespace = try listTablespace(tree.tablespaces[0], options: options) { warnings.append($0) }
        #expect(tablespace.map { $0.tarPath.description } == ["PG_15_202209061", "PG_15_202209061/5", "PG_15_202209061/5/16500"])
        #expect(tablespace.map { $0.manifestPath.description }.last == "pg_tblspc/16400/PG_15_202209061/5/16500")

        // 17 adds pg_wal/summaries.
        let tree17 = try listDataDirectory(FilePath(data), options: BackupTreeOptions(majorVersion: "17", catalogVersion: 1)) { _ in }
        #expect(tree17.entries.map { $0.tarPath.description }.contains("pg_wal/summaries"))
    }

    // MARK: - Manifest

    @Test func manifestLayoutIsTheServers() throws {
        var manifest = BackupManifest(serverMajorVersion: 15, systemIdentifier: 7_300_000_000_000_000_001)
        manifest.addFile(path: Array("PG_VERSION".utf8), size: 3, mtime: 1_795_769_690, crc32c: CRC32C.checksum(Array("15\n".utf8)))
        manifest.addFile(path: Array("odd \"name\"\\\n".utf8), size: 0, mtime: 0, crc32c: CRC32C.checksum([]))
        manifest.addFile(path: [0x66, 0xFF], size: 1, mtime: 0, crc32c: 0x0102_0304)
        let bytes = manifest.encoded(timeline: 1, startLSN: 0x9000028, endLSN: 0x1_0900_0100)
        let text = String(decoding: bytes, as: UTF8.self)
        let body = """
            { "PostgreSQL-Backup-Manifest-Version": 1,
            "Files": [
            { "Path": "PG_VERSION", "Size": 3, "Last-Modified": "2026-11-27 08:54:50 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "8a744722" },
            { "Path": "odd \\"name\\"\\\\\\n", "Size": 0, "Last-Modified": "1970-01-01 00:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" },
            { "Encoded-Path": "66ff", "Size": 1, "Last-Modified": "1970-01-01 00:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "04030201" }
            ],
            "WAL-Ranges": [
            { "Timeline": 1, "Start-LSN": "0/9000028", "End-LSN": "1/9000100" }
            ],

            """
        #expect(text.hasPrefix(body), "\(text)")
        #expect(text == body + "\"Manifest-Checksum\": \"\(SHA256.hexDigest(Array(body.utf8)))\"}\n")

        let v2 = String(decoding: BackupManifest(serverMajorVersion: 17, systemIdentifier: 42).encoded(timeline: 2, startLSN: 1, endLSN: 2), as: UTF8.self)
        #expect(v2.hasPrefix("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 42,\n\"Files\": [\n],\n"))
    }

    // MARK: - Labelfile, LSNs, WAL range

    @Test func labelfileAndWALRange() {
        let label = Array("""
            START WAL LOCATION: 0/7000028 (file 000000010000000000000007)
            CHECKPOINT LOCATION: 0/7000060
            BACKUP METHOD: streamed
            BACKUP FROM: primary
            START TIME: 2026-11-27 06:54:50 UTC
            LABEL: lbl
            START TIMELINE: 1

            """.utf8)
        #expect(BackupLabel(labelfile: label) == BackupLabel(startLSN: 0x7000028, startWALFile: "000000010000000000000007", timeline: 1))
        // 10 and older: no START TIMELINE line; the file name's timeline is used. PG19 zero-pads LSNs.
        let old = Array("START WAL LOCATION: 0/07000028 (file 000000030000000000000007)\nLABEL: x\n".utf8)
        #expect(BackupLabel(labelfile: old)?.timeline == 3)
        #expect(BackupLabel(labelfile: Array("LABEL: x\n".utf8)) == nil)
        #expect(BackupLabel(labelfile: Array("START WAL LOCATION: 0/7000028 (file 0000000100000000000007)\n".utf8)) == nil)

        #expect(parseLSN("16/B374D848") == 0x16_B374_D848)
        #expect(parseLSN("0/0") == 0)
        #expect(parseLSN("x/1") == nil && parseLSN("1") == nil && parseLSN("123456789/0") == nil)
        #expect(formatLSN(0x16_B374_D848) == "16/B374D848")

        let mb16: UInt64 = 16 << 20
        #expect(walSegmentsNeeded(timeline: 1, startLSN: 0x7000028, stopLSN: 0x7000100, segmentSize: mb16) == ["000000010000000000000007"])
        // A stop exactly on a segment boundary does not need the next segment (XLByteToPrevSeg).
        #expect(walSegmentsNeeded(timeline: 2, startLSN: 0xFF00_0028, stopLSN: 0x1_0100_0000, segmentSize: mb16)
            == ["0000000200000000000000FF", "000000020000000100000000"])
        #expect(walSegmentsNeeded(timeline: 1, startLSN: 5, stopLSN: 5, segmentSize: mb16) == nil)
        #expect(walSegmentsNeeded(timeline: 1, startLSN: 5, stopLSN: 6, segmentSize: 12345) == nil)
    }

    // MARK: - Output names, lock, retention

    @Test func backupDirectoryNames() {
        #expect(backupDirectoryName(1_795_769_690) == "20261127T085450Z")
        for good in ["20261127T065450Z", "20261127T065450Z-2", "20261127T065450Z-10"] { #expect(isBackupDirectoryName(Array(good.utf8))) }
        for bad in ["20261127T065450", "20261127T065450Z-", "20261127X065450Z", ".walferry-backup-partial-20261127T065450Z", "x"] {
            #expect(!isBackupDirectoryName(Array(bad.utf8)), "\(bad)")
        }
    }

    @Test func destinations() throws {
        let folder = try TemporaryDirectory()
        #expect(try BackupDestination.resolve("-") == .standardOutput)
        #expect(try BackupDestination.resolve(folder.path) == .directory(folder.path))
        #expect(try BackupDestination.resolve(folder.join("new.tar.bz2")) == .file(folder.join("new.tar.bz2")))
        try writeFile(folder.join("exists"), [])
        #expect(throws: BackupFailure.self) { try BackupDestination.resolve(folder.join("exists")) }
        #expect(throws: BackupFailure.self) { try BackupDestination.resolve(folder.join("missing/x.tar.bz2")) }
        #expect(throws: BackupFailure.self) { try BackupDestination.resolve(folder.join("missing/")) }
    }

    @Test func aSecondLockFailsAtOnce() throws {
        let folder = try TemporaryDirectory()
        let first = try BackupLock(directory: FilePath(folder.path))
        do {
            _ = try BackupLock(directory: FilePath(folder.path))
            Issue.record("a second lock was granted")
        } catch {
            #expect(error.status == .locked)
            #expect(error.message == "another walferry-backup is already writing to \"\(folder.path)\"")
        }
        first.release()
        _ = try BackupLock(directory: FilePath(folder.path))
    }

    @Test func retentionKeepsTheNewestAndTheirWAL() throws {
        let folder = try TemporaryDirectory()
        let backups = try folder.makeDirectory("backups")
        let archive = try folder.makeDirectory("archive")
        let starts: [(String, String)] = [("20260101T000000Z", "0/2000028"), ("20260102T000000Z", "0/4000028"),
                                          ("20260102T000000Z-2", "0/6000060"), ("20260103T000000Z", "0/8000028")]
        for (name, start) in starts {
            let dir = try folder.makeDirectory("backups/" + name)
            // A real manifest (retention reads it through the catalogue, which checks its checksum).
            try writeFile(dir + "/backup_manifest", BackupManifest(serverMajorVersion: 15, systemIdentifier: 1)
                .encoded(timeline: 1, startLSN: parseLSN(start)!, endLSN: 0x900_0000))
        }
        try folder.makeDirectory("backups/20260104T000000Z")  // incomplete (no manifest): neither counted nor removed
        try writeFile(backups + "/.walferry-backup.lock", [])
        for segment in 1...9 { try writeFile(archive + "/00000001000000000000000\(segment)" + (segment % 2 == 0 ? ".bz2" : ""), [1]) }
        try writeFile(archive + "/000000010000000000000004.00000028.backup", [1])
        try writeFile(archive + "/000000010000000000000006.00000060.backup", [1])

        #expect(try completeBackups(in: backups) == starts.map { $0.0 })
        let (outcome, failure) = applyRetention(directory: backups, keep: 2, walArchive: archive, segmentSize: 16 << 20,
                                                console: Console(program: "test"))
        #expect(failure == nil)
        #expect(outcome.removedBackups == ["20260101T000000Z", "20260102T000000Z"])
        #expect(outcome.walCutoff == "000000010000000000000006")
        #expect(try listDirectory(backups) == [".walferry-backup.lock", "20260102T000000Z-2", "20260103T000000Z", "20260104T000000Z"])
        #expect(try listDirectory(archive) == ["000000010000000000000006.00000060.backup", "000000010000000000000006.bz2",
                                              "000000010000000000000007", "000000010000000000000008.bz2", "000000010000000000000009"])
    }
}

extension BackupLabel {
    init(startLSN: UInt64, startWALFile: String, timeline: UInt32) {
        self.init(labelfile: Array("START WAL LOCATION: \(formatLSN(startLSN)) (file \(startWALFile))\nSTART TIMELINE: \(timeline)\n".utf8))!
    }
}
