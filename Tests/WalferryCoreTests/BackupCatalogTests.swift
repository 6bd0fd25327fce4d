// The backup catalogue, the manifest reader, the streaming tar reader and the verifier, without a
// server: manifests from walferry's own writer read back field by field, a flipped byte in a manifest
// or in a file refused with its exact message, tarballs from GNU tar (ustar and pax) read as tar
// extracts them, unsafe names refused, a single tarball's trailing manifest checked after the fact.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

/// Records what a backup's reading hands over.
final class RecordingSink: BackupEntrySink {
    var entries: [(path: String, type: TarEntryType, size: UInt64, link: String)] = []
    var data: [String: [UInt8]] = [:]
    private var current = ""

    func entryBegins(_ entry: BackupEntry) throws(BackupProblem) {
        let path = String(decoding: entry.manifestPath, as: UTF8.self)
        entries.append((path, entry.tar.type, entry.tar.size, String(decoding: entry.tar.linkTarget, as: UTF8.self)))
        current = path
        if entry.tar.type == .regular { data[path] = [] }
    }

    func fileData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem) { data[current, default: []] += Array(bytes) }
    func fileEnds() throws(BackupProblem) {}
}

@Suite struct BackupCatalogTests {
    /// A tar stream of `files` (path, contents; nil contents for a directory), made by walferry's own
    /// header encoder.
    static func tarBytes(_ files: [(String, [UInt8]?)], end: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = []
        for (path, contents) in files {
            let header = TarHeader(path: Array(path.utf8), type: contents == nil ? .directory : .regular, mode: 0o600,
                                   uid: 0, gid: 0, size: UInt64(contents?.count ?? 0), mtime: 1_700_000_000)
            bytes += header.encoded()
            if let contents {
                bytes += contents
                bytes += [UInt8](repeating: 0, count: tarPadding(UInt64(contents.count)))
            }
        }
        if end { bytes += [UInt8](repeating: 0, count: tarEndOfArchiveSize) }
        return bytes
    }

    static func manifest(_ files: [(String, [UInt8]?)], version: Int = 15) -> [UInt8] {
        var manifest = BackupManifest(serverMajorVersion: version, systemIdentifier: 7_712_740_923_202_838_945)
        for (path, contents) in files {
            guard let contents else { continue }
            manifest.addFile(path: Array(path.utf8), size: UInt64(contents.count), mtime: 1_767_225_600,
                             crc32c: CRC32C.checksum(contents))
        }
        return manifest.encoded(timeline: 2, startLSN: 0x300_0028, endLSN: 0x500_0100)
    }

    /// A backup directory holding base.tar.bz2 and its manifest.
    static func backupDirectory(_ folder: TemporaryDirectory, name: String = "20260101T000000Z",
                                files: [(String, [UInt8]?)], tarFiles: [(String, [UInt8]?)]? = nil) throws -> String {
        let dir = try folder.makeDirectory("backups/" + name)
        try writeFile(dir + "/base.tar.bz2", try BZip2.compress(tarBytes(tarFiles ?? files), jobs: 2))
        try writeFile(dir + "/backup_manifest", manifest(files))
        return dir
    }

    static let sampleFiles: [(String, [UInt8]?)] = [
        ("global", nil), ("PG_VERSION", Array("15\n".utf8)),
        ("base/1/" + String(repeating: "long-name-", count: 20), Array(repeating: 7, count: 70_000)),
        ("global/pg_control", Array(repeating: 1, count: 8192)), ("backup_label", Array("START WAL LOCATION: 0/3000028\n".utf8)),
    ]

    static func read(_ backup: CatalogedBackup) throws(BackupProblem) -> RecordingSink {
        let sink = RecordingSink()
        let verifier = BackupVerifier(manifest: backup.manifest, name: backup.path.description)
        for tarball in backup.tarballs { try readBackupTarball(tarball, verifier: verifier, sink: sink, jobs: 2) }
        try verifier.finish()
        return sink
    }

    @Test func aManifestReadsBackAsItWasWritten() throws {
        var writer = BackupManifest(serverMajorVersion: 17, systemIdentifier: 42)
        writer.addFile(path: Array("base/1/1259".utf8), size: 8192, mtime: 1_767_225_600, crc32c: 0x1234_5678)
        writer.addFile(path: [0x66, 0xFF, 0x0A], size: 3, mtime: 0, crc32c: 1)  // not UTF-8: Encoded-Path
        writer.addFile(path: Array("a \"quoted\"\\name".utf8), size: 0, mtime: 0, crc32c: 0)
        writer.addFile(path: Array("backup_label".utf8), size: 10, mtime: 1_767_225_661, crc32c: 2)
        let parsed = try ParsedBackupManifest(parsing: writer.encoded(timeline: 3, startLSN: 0x1_0000_0028, endLSN: 0x1_0200_0000),
                                              name: "m")
        #expect(parsed.version == 2)
        #expect(parsed.systemIdentifier == 42)
        #expect(parsed.files.map(\.path) == [Array("base/1/1259".utf8), [0x66, 0xFF, 0x0A], Array("a \"quoted\"\\name".utf8),
                                             Array("backup_label".utf8)])
        #expect(parsed.files[0].size == 8192)
        #expect(parsed.files[0].algorithm == .crc32c)
        #expect(parsed.files[0].checksum == [0x78, 0x56, 0x34, 0x12])
        #expect(parsed.files[0].lastModified == 1_767_225_600)
        #expect(parsed.walRanges == [ManifestWALRange(timeline: 3, startLSN: 0x1_0000_0028, endLSN: 0x1_0200_0000)])
        #expect(parsed.stopTime == 1_767_225_661)
    }

    @Test func aManifestWithOneFlippedByteIsRefused() throws {
        var bytes = Self.manifest(Self.sampleFiles)
        let index = bytes.firstIndex(of: UInt8(ascii: "7"))!  // in the system identifier... a digit of the Size
        bytes[index] = UInt8(ascii: "8")
        let expected = SHA256.hexDigest(bytes[...bytes.dropLast().lastIndex(of: 0x0A)!])
        #expect(throws: BackupProblem(.damaged, "backup manifest \"m\" checksum mismatch: actual \(expected), expected "
                                      + String(decoding: Self.manifest(Self.sampleFiles).suffix(67).prefix(64), as: UTF8.self))) {
            try ParsedBackupManifest(parsing: bytes, name: "m")
        }
        #expect(throws: BackupProblem(.damaged, "could not parse backup manifest \"m\": last line not newline-terminated")) {
            try ParsedBackupManifest(parsing: Array(Self.manifest(Self.sampleFiles).dropLast()), name: "m")
        }
    }

    @Test func theCatalogueListsCompleteBackupsWithTheirWAL() throws {
        let folder = try TemporaryDirectory()
        _ = try Self.backupDirectory(folder, name: "20260102T000000Z", files: Self.sampleFiles)
        _ = try Self.backupDirectory(folder, name: "20260101T000000Z", files: Self.sampleFiles)
        try folder.makeDirectory("backups/20260103T000000Z")  // no manifest: incomplete
        let dir = try Self.backupDirectory(folder, name: "20260101T000000Z-2", files: Self.sampleFiles)
        try writeFile(dir + "/16384.tar.bz2", try BZip2.compress(Self.tarBytes([]), jobs: 1))
        let backups = try catalogBackups(in: folder.join("backups"))
        #expect(backups.map(\.id) == ["20260101T000000Z", "20260101T000000Z-2", "20260102T000000Z"])
        #expect(backups[1].tarballs.map(\.path.description) == [dir + "/base.tar.bz2", dir + "/16384.tar.bz2"])
        #expect(backups[1].tarballs.map(\.manifestPrefix) == [[], Array("pg_tblspc/16384/".utf8)])
        #expect(backups[0].nameTime == 1_767_225_600)
        #expect(backups[0].stopTime == 1_767_225_600)  // backup_label's Last-Modified
        #expect(backups[0].startSegment(segmentSize: 16 << 20) == "000000020000000000000003")
        #expect(backups[0].segmentsNeeded(segmentSize: 16 << 20) == ["000000020000000000000003", "000000020000000000000004",
                                                                    "000000020000000000000005"])
        #expect(oldestNeededWALFile(backupDirectory: FilePath(dir), segmentSize: 16 << 20) == "000000020000000000000003")
    }

    @Test func aBackupReadsWhole() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.backupDirectory(folder, files: Self.sampleFiles)
        let sink = try Self.read(try CatalogedBackup(at: FilePath(dir)))
        #expect(sink.entries.map(\.path) == Self.sampleFiles.map(\.0))
        for (path, contents) in Self.sampleFiles { #expect(sink.data[path] == contents) }
        // The same through a sink that discards: the verification alone.
        let backup = try CatalogedBackup(at: FilePath(dir))
        let verifier = BackupVerifier(manifest: backup.manifest, name: dir)
        try readBackupTarball(backup.tarballs[0], verifier: verifier, sink: DiscardingBackupSink(), jobs: 1)
        try verifier.finish()
    }

    @Test func aFileThatDiffersFromTheManifestIsRefused() throws {
        let folder = try TemporaryDirectory()
        var flipped = Self.sampleFiles
        flipped[3].1![100] ^= 0x01
        let dir = try Self.backupDirectory(folder, files: Self.sampleFiles, tarFiles: flipped)
        #expect(throws: BackupProblem(.damaged, "checksum mismatch for file \"global/pg_control\" in backup \"\(dir)\"")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir)))
        }
        var shorter = Self.sampleFiles
        shorter[1].1 = Array("15".utf8)
        let dir2 = try Self.backupDirectory(folder, name: "20260102T000000Z", files: Self.sampleFiles, tarFiles: shorter)
        #expect(throws: BackupProblem(.damaged, "file \"PG_VERSION\" has size 2 in backup \"\(dir2)\" but size 3 in the manifest")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir2)))
        }
        let dir3 = try Self.backupDirectory(folder, name: "20260103T000000Z", files: Self.sampleFiles,
                                            tarFiles: Array(Self.sampleFiles.dropLast()))
        #expect(throws: BackupProblem(.damaged, "file \"backup_label\" is listed in the manifest of backup \"\(dir3)\" but is not in the backup")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir3)))
        }
        let dir4 = try Self.backupDirectory(folder, name: "20260104T000000Z", files: Self.sampleFiles,
                                            tarFiles: Self.sampleFiles + [("extra", [1]), ("pg_wal/000000020000000000000003", [2])])
        #expect(throws: BackupProblem(.damaged, "file \"extra\" is in backup \"\(dir4)\" but not in its manifest")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir4)))
        }
    }

    @Test func damagedTarballsAreRefused() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.backupDirectory(folder, files: Self.sampleFiles)
        let base = dir + "/base.tar.bz2"
        // A flipped byte in the compressed data's last CRC: every byte decodes, the check fails at the end.
        var compressed = try Array(Data(contentsOf: URL(fileURLWithPath: base)))
        compressed[compressed.count - 3] ^= 0x10
        try writeFile(base, compressed)
        #expect(throws: BackupProblem(.damaged, "could not decompress file \"\(base)\": compressed data is corrupt (CRC mismatch or invalid block)")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir)))
        }
        // No end-of-archive marker.
        try writeFile(base, try BZip2.compress(Self.tarBytes(Self.sampleFiles, end: false), jobs: 1))
        #expect(throws: BackupProblem(.damaged, "invalid tar data in file \"\(base)\" at offset 82944: the tarball ends before its end-of-archive marker")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir)))
        }
        // A name that leaves the directory.
        try writeFile(base, try BZip2.compress(Self.tarBytes([("global/../../etc/passwd", [1])]), jobs: 1))
        #expect(throws: BackupProblem(.damaged, "invalid tar data in file \"\(base)\" at offset 512: unsafe member name \"global/../../etc/passwd\"")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir)))
        }
        // Missing.
        try FileManager.default.removeItem(atPath: base)
        #expect(throws: BackupProblem(.unreadable, "could not open file \"\(base)\": No such file or directory")) {
            try Self.read(try CatalogedBackup(at: FilePath(dir)))
        }
    }

    @Test func aSingleTarballIsCheckedOnceItsManifestArrives() throws {
        let folder = try TemporaryDirectory()
        let path = folder.join("backup.tar.bz2")
        try writeFile(path, try BZip2.compress(Self.tarBytes(Self.sampleFiles + [("backup_manifest", Self.manifest(Self.sampleFiles))]), jobs: 2))
        let backup = try CatalogedBackup(at: FilePath(path))
        #expect(backup.isSingleTarball)
        let sink = try Self.read(backup)
        #expect(sink.data["global/pg_control"] == Self.sampleFiles[3].1)

        var flipped = Self.sampleFiles
        flipped[1].1 = Array("16\n".utf8)
        try writeFile(path, try BZip2.compress(Self.tarBytes(flipped + [("backup_manifest", Self.manifest(Self.sampleFiles))]), jobs: 2))
        #expect(throws: BackupProblem(.damaged, "checksum mismatch for file \"PG_VERSION\" in backup \"\(path)\"")) {
            try Self.read(try CatalogedBackup(at: FilePath(path)))
        }
        try writeFile(path, try BZip2.compress(Self.tarBytes(Self.sampleFiles), jobs: 2))
        #expect(throws: BackupProblem(.damaged, "backup \"\(path)\" holds no backup_manifest",
                                      hints: ["A tarball walferry-backup wrote ends with its manifest; this one is truncated or comes from another tool."])) {
            try Self.read(try CatalogedBackup(at: FilePath(path)))
        }
    }

    /// GNU tar's own ustar and pax archives (long names, a symbolic link, a directory) read as GNU tar
    /// lists them.
    @Test(arguments: ["ustar", "pax"]) func gnuTarArchivesReadAsTarListsThem(format: String) throws {
        let folder = try TemporaryDirectory()
        let source = try folder.makeDirectory("src")
        let deep = try folder.makeDirectory("src/" + String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60))
        try writeFile(deep + "/" + String(repeating: "f", count: 99), Array(repeating: 3, count: 1000))
        try writeFile(source + "/small", Array("x".utf8))
        symlink("/some/where/" + String(repeating: "l", count: 80), source + "/link")
        let out = try runProcess("/usr/bin/tar", ["--format=\(format)", "-cjf", folder.join("t.tar.bz2"), "-C", source, "."])
        #expect(out.status == 0, "\(out.stderr)")
        let sink = RecordingSink()
        let tarball = BackupTarball(path: FilePath(folder.join("t.tar.bz2")), tablespaceOID: nil)
        // Without a manifest every file is pending; the verifier's finish is not called.
        try readBackupTarball(tarball, verifier: BackupVerifier(manifest: nil, name: "t"), sink: sink, jobs: 2)
        let listing = try runProcess("/usr/bin/tar", ["-tjf", folder.join("t.tar.bz2")])
        let expected = listing.stdout.split(separator: "\n").compactMap { normalisedMemberPath(Array($0.utf8)) }.filter { !$0.isEmpty }
            .map { String(decoding: $0, as: UTF8.self) }
        #expect(sink.entries.map(\.path) == expected)
        #expect(sink.data[String(deep.dropFirst(source.count + 1)) + "/" + String(repeating: "f", count: 99)] == Array(repeating: 3, count: 1000))
        #expect(sink.entries.first { $0.path == "link" }?.link == "/some/where/" + String(repeating: "l", count: 80))
    }
}
