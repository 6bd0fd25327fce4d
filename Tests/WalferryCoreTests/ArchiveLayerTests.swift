// Unit tests of the archive layer every tool stands on: the archive directory (its identity record,
// the order of a WAL file's forms, members opened safely), the WAL checks, the data directory and
// the archives a data directory knows, and walferry-archive's decisions on its arguments.
//
// The CLI and end-to-end tests reach all of this through processes; these pin each decision on its
// own, on real files in a temporary directory, so that the tools to come can lean on it.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

struct ArchiveLayerTests {
    static let identity = ArchiveIdentity(systemIdentifier: testSystemIdentifier, segmentSize: WALSegmentSize(bytes: 1 << 20) ?? .default,
                                          postgresVersion: 15)

    // MARK: - The archive directory

    @Test func aWALFileIsLookedForInTheFormAskedForFirst() {
        #expect(ArchiveDirectory.candidates(for: "000000010000000000000001", compressedFirst: false)
                == ["000000010000000000000001", "000000010000000000000001.bz2"])
        #expect(ArchiveDirectory.candidates(for: "00000002.history", compressedFirst: true)
                == ["00000002.history.bz2", "00000002.history"])
    }

    @Test func theIdentityRecordIsCreatedOnceAndReadBack() throws {
        let folder = try TemporaryDirectory()
        let archive = try ArchiveDirectory(path: folder.path)
        #expect(throws: ArchiveDirectory.IdentityError.missing) { try archive.readIdentity() }

        #expect(try archive.createIdentity(Self.identity) == .link)
        #expect(try archive.readIdentity() == Self.identity)
        #expect(String(decoding: try readFile(folder.join("walferry.identity")), as: UTF8.self) == Self.identity.text)
        #expect(fileMode(folder.join("walferry.identity")) == 0o644)

        // A second creation never replaces the first: it says another process was first.
        let other = ArchiveIdentity(systemIdentifier: 42, segmentSize: .default, postgresVersion: 17)
        #expect(try archive.createIdentity(other) == nil)
        #expect(try archive.readIdentity() == Self.identity)
        #expect(try listDirectory(folder.path) == ["walferry.identity"])
    }

    @Test func aRecordThatIsNotOneWalferryWritesIsInvalid() throws {
        let folder = try TemporaryDirectory()
        let archive = try ArchiveDirectory(path: folder.path)
        for text in ["", "walferry archive identity 2\n", String(Self.identity.text.dropLast()),
                     Self.identity.text.replacingOccurrences(of: "16", with: "15") + "x\n",
                     Self.identity.text.replacingOccurrences(of: "1048576", with: "1000000")] {
            try writeFile(folder.join("walferry.identity"), Array(text.utf8))
            #expect(throws: ArchiveDirectory.IdentityError.invalid, "\(text)") { try archive.readIdentity() }
        }
        #expect(invalidIdentityRecord(archive, status: RestoreExitStatus.identity).message
                == "invalid archive identity record \"\(folder.path)/walferry.identity\"")
    }

    @Test func aRecordThatCannotBeReadIsAnIOErrorNotAMiss() throws {
        let folder = try TemporaryDirectory()
        let archive = try ArchiveDirectory(path: folder.path)
        _ = try folder.makeDirectory("walferry.identity")
        #expect(throws: ArchiveDirectory.IdentityError.io(step: "read", Errno(EISDIR))) { try archive.readIdentity() }

        try FileManager.default.removeItem(atPath: folder.join("walferry.identity"))
        try FileManager.default.createSymbolicLink(atPath: folder.join("walferry.identity"), withDestinationPath: "/etc/hostname")
        #expect(throws: ArchiveDirectory.IdentityError.io(step: "open", Errno(ELOOP))) { try archive.readIdentity() }
    }

    @Test func membersAreRegularFilesOpenedWithoutFollowingLinksOrBlocking() throws {
        let folder = try TemporaryDirectory()
        let archive = try ArchiveDirectory(path: folder.path)
        try writeFile(folder.join("plain"), [1, 2, 3])
        _ = try folder.makeDirectory("directory")
        try FileManager.default.createSymbolicLink(atPath: folder.join("link"), withDestinationPath: folder.join("plain"))
        #expect(mkfifo(folder.join("fifo"), 0o600) == 0)

        #expect(try archive.openMember("missing") == nil)
        #expect(try archive.openMember("plain")?.size == 3)
        #expect(throws: ArchiveDirectory.MemberError.open(Errno(ELOOP))) { try archive.openMember("link") }
        #expect(throws: ArchiveDirectory.MemberError.notRegular) { try archive.openMember("directory") }
        #expect(throws: ArchiveDirectory.MemberError.notRegular) { try archive.openMember("fifo") }  // and does not hang
    }

    @Test func aDirectoryHoldsWALWhenOneNameIsAWALFileName() throws {
        let folder = try TemporaryDirectory()
        let archive = try ArchiveDirectory(path: folder.path)
        #expect(try archive.holdsWALFiles() == false)
        try writeFile(folder.join("README"), [])
        try writeFile(folder.join("walferry.identity"), [])
        try writeFile(folder.join(".000000010000000000000001.walferry-tmp"), [])
        #expect(try archive.holdsWALFiles() == false)
        try writeFile(folder.join("00000002.history.bz2"), [])
        #expect(try archive.holdsWALFiles() == true)
    }

    // MARK: - The WAL checks

    @Test func withoutARecordOnlyTheDataDirectorysSystemIdentifierIsCompared() throws {
        let name = try #require(WALFileName("000000010000000000000003"))
        let segment = syntheticSegment(name: name.description, magic: 0xD116)
        segment.withUnsafeBytes { contents in
            #expect(throws: Never.self) {
                try checkArchivedSegment(name, contents: contents, size: UInt64(segment.count), belongsTo: .systemIdentifier(nil))
                try checkArchivedSegment(name, contents: contents, size: UInt64(segment.count), belongsTo: .systemIdentifier(testSystemIdentifier))
            }
            #expect(throws: ArchivedSegmentProblem.self) {
                try checkArchivedSegment(name, contents: contents, size: UInt64(segment.count), belongsTo: .systemIdentifier(42))
            }
        }
    }

    @Test func aSegmentIsCheckedAgainstItsNameAndTheArchiveIdentity() throws {
        let name = try #require(WALFileName("000000010000000000000003"))
        let sound = syntheticSegment(name: name.description)
        #expect(throws: Never.self) {
            try sound.withUnsafeBytes { try checkArchivedSegment(name, contents: $0, size: UInt64(sound.count), belongsTo: .identity(Self.identity)) }
        }
        #expect(try sound.withUnsafeBytes { try segmentIdentity(name, contents: $0, size: UInt64(sound.count)) } == Self.identity)

        let misnamed = syntheticSegment(name: "000000010000000000000004")
        #expect(throws: ArchivedSegmentProblem.invalid(.pageAddressMismatch(found: 0x40_0000, expected: 0x30_0000))) {
            try misnamed.withUnsafeBytes { try checkArchivedSegment(name, contents: $0, size: UInt64(misnamed.count), belongsTo: .identity(Self.identity)) }
        }
        #expect(throws: ArchivedSegmentProblem.invalid(.sizeMismatch(fileSize: 4096, declared: 1 << 20))) {
            try Array(sound.prefix(4096)).withUnsafeBytes { try checkArchivedSegment(name, contents: $0, size: 4096, belongsTo: .identity(Self.identity)) }
        }
        let foreign = syntheticSegment(name: name.description, systemIdentifier: 42)
        let foreignIdentity = ArchiveIdentity(systemIdentifier: 42, segmentSize: Self.identity.segmentSize, postgresVersion: 15)
        #expect(throws: ArchivedSegmentProblem.foreign(found: foreignIdentity)) {
            try foreign.withUnsafeBytes { try checkArchivedSegment(name, contents: $0, size: UInt64(foreign.count), belongsTo: .identity(Self.identity)) }
        }
        let newer = syntheticSegment(name: name.description, magic: 0xD116)
        #expect(throws: ArchivedSegmentProblem.foreign(found: ArchiveIdentity(systemIdentifier: Self.identity.systemIdentifier,
                                                                               segmentSize: Self.identity.segmentSize, postgresVersion: 17))) {
            try newer.withUnsafeBytes { try checkArchivedSegment(name, contents: $0, size: UInt64(newer.count), belongsTo: .identity(Self.identity)) }
        }
    }

    // MARK: - The data directory

    @Test func aDataDirectoryNamesItsVersionAndSystemIdentifier() throws {
        let folder = try TemporaryDirectory()
        let data = DataDirectory(path: FilePath(folder.path))
        #expect(!data.isDataDirectory)
        #expect(throws: Errno.noSuchFileOrDirectory) { try data.systemIdentifier() }

        try writeFile(folder.join("PG_VERSION"), Array("15\n".utf8))
        _ = try folder.makeDirectory("global")
        try writeFile(folder.join("global/pg_control"), [0x01, 0x02, 0x03])
        #expect(data.isDataDirectory)
        #expect(try data.majorVersion() == "15")
        #expect(throws: Errno(EIO)) { try data.systemIdentifier() }  // too short to hold one

        // The server's byte order: little-endian here.
        try writeFile(folder.join("global/pg_control"), [0xA1, 0xA1, 0x1F, 0x7C, 0x01, 0x29, 0x09, 0x6B] + [UInt8](repeating: 0, count: 100))
        #expect(try data.systemIdentifier() == testSystemIdentifier)
        #expect(data.controlFile.description == folder.path + "/global/pg_control")
        #expect(DataDirectory.working.controlFile.description == "global/pg_control")
    }

    @Test func aDataDirectoryRemembersTheArchivesItStarted() throws {
        let folder = try TemporaryDirectory()
        let data = DataDirectory(path: FilePath(folder.path))
        #expect(KnownArchives.read(in: data) == [])
        try KnownArchives.note("/mnt/archive", in: data)
        try KnownArchives.note("/mnt/other archive", in: data)
        #expect(KnownArchives.read(in: data) == ["/mnt/archive", "/mnt/other archive"])
        #expect(fileMode(folder.join("walferry.archives")) == 0o600)
    }

    // MARK: - walferry-archive's decisions on its arguments

    @Test(arguments: [
        ("pg_wal/000000010000000000000001", "/a/000000010000000000000001", nil, nil),
        ("pg_wal/000000010000000000000001", "/a/000000010000000000000001.bz2", nil, nil),
        ("pg_wal/00000002.history", "/a/00000002.history.bz2", nil, nil),
        ("pg_wal/RECOVERYXLOG", "/a/RECOVERYXLOG", "\"pg_wal/RECOVERYXLOG\" is not a WAL file name",
         "\"RECOVERYXLOG\" is restore_command's %p; archive_command takes walferry-archive, restore_command walferry-restore."),
        ("pg_wal/000000010000000000000001.gz", "/a/x", "\"pg_wal/000000010000000000000001.gz\" is not a WAL file name",
         "SOURCE is %p: the path of a segment, .partial, .backup or .history file under pg_wal."),
        ("pg_wal/000000010000000000000001", "/a/000000010000000000000001.gz",
         "archive file name \"000000010000000000000001.gz\" does not match \"000000010000000000000001\"",
         "walferry-archive compresses with bzip2 only: use %f.bz2."),
        ("pg_wal/000000010000000000000001", "/a/000000010000000000000002",
         "archive file name \"000000010000000000000002\" does not match \"000000010000000000000001\"",
         "DEST must end with %f, or %f.bz2 to compress: walferry-archive %p /mnt/archive/%f"),
    ] as [(String, String, String?, String?)])
    func theArchiverChecksItsNames(_ source: String, _ destination: String, _ message: String?, _ hint: String?) {
        let archiver = Archiver(request: ArchiveRequest(source: source, destination: destination), console: Console(program: "test"))
        do {
            let name = try archiver.checkNames(sourceName: splitPath(source).name, destinationName: splitPath(destination).name)
            #expect(message == nil)
            #expect(name.description == splitPath(source).name)
        } catch {
            #expect(error.status == .usage)
            #expect(error.message == message)
            #expect(error.hints == hint.map { [$0] })
        }
    }
}
