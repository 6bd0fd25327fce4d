// Reading a backup's tarballs once, verifying every file against backup_manifest on the way: what
// walferry-check --deep does with a sink that discards, and what walferry-recover does while it
// writes the data directory.
//
// Like pg_verifybackup (src/bin/pg_verifybackup/pg_verifybackup.c) run on the extracted backup: each
// file listed in the manifest must be there with the manifest's size and checksum, and each file
// there must be listed, except what pg_verifybackup skips (backup_manifest, pg_wal, and the files a
// recovery writes: postgresql.auto.conf, recovery.signal, standby.signal, when the manifest does not
// list them). Unlike it, there is no second pass: sizes are compared when an entry's header arrives,
// checksums as its last byte goes by, before the consumer is told the file is complete; and it reads
// the tarballs (through the parallel bzip2 decoder and TarReader.swift), not an extracted copy. A
// single tarball's manifest is its last member: its files are checked once it has arrived.

import Glibc

/// One entry of a backup, as handed to a `BackupEntrySink`.
public struct BackupEntry: Sendable {
    /// The entry as the tarball holds it; `tar.path` is relative to the tarball's root (the data
    /// directory, or the tablespace's location).
    public let tar: TarEntry
    /// The tarball it comes from.
    public let tarball: BackupTarball
    /// The path relative to the restored data directory, as backup_manifest names it.
    public let manifestPath: [UInt8]
}

/// What a backup's entries go to. Every call may throw to stop the reading: `.output` for a failed
/// write, `.interrupted` for a signal.
public protocol BackupEntrySink: AnyObject {
    /// An entry starts: a directory, a symbolic link, or a regular file whose data follows.
    func entryBegins(_ entry: BackupEntry) throws(BackupProblem)
    /// The next bytes of the current file.
    func fileData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem)
    /// The current file is complete, and its size and checksum matched the manifest (when the
    /// manifest is known already; for a single tarball, `BackupVerifier.finish` checks later).
    func fileEnds() throws(BackupProblem)
}

/// A sink that keeps nothing, for a verification that does not extract.
public final class DiscardingBackupSink: BackupEntrySink {
    public init() {}
    public func entryBegins(_ entry: BackupEntry) throws(BackupProblem) {}
    public func fileData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem) {}
    public func fileEnds() throws(BackupProblem) {}
}

/// Checks a backup's files against its manifest as they stream by. One verifier for all the
/// tarballs of one backup; call `finish` after the last.
public final class BackupVerifier {
    /// The manifest, once known.
    public private(set) var manifest: ParsedBackupManifest?
    /// The bytes of a single tarball's backup_manifest member, once read.
    public private(set) var manifestBytes: [UInt8]?
    private var expected: [[UInt8]: ManifestFile] = [:]
    private var seen: Set<[UInt8]> = []
    /// Files read before the manifest was known (single tarball): path, size, checksum state.
    private var pending: [(path: [UInt8], size: UInt64, crc: UInt32)] = []
    private let name: String

    /// `manifest` is the backup directory's parsed manifest, or nil for a single tarball (whose last
    /// member is its manifest). `name` is the backup's path for messages.
    public init(manifest: ParsedBackupManifest?, name: String) {
        self.manifest = manifest
        self.name = name
        if let manifest { index(manifest) }
    }

    private func index(_ manifest: ParsedBackupManifest) {
        for file in manifest.files { expected[file.path] = file }
    }

    /// Checks that every file of the manifest was read. Call after every tarball was read whole.
    public func finish() throws(BackupProblem) {
        guard let manifest else {
            throw BackupProblem(.damaged, "backup \"\(name)\" holds no backup_manifest",
                                hints: ["A tarball walferry-backup wrote ends with its manifest; this one is truncated or comes from another tool."])
        }
        for file in manifest.files where !seen.contains(file.path) {
            throw BackupProblem(.damaged, "file \"\(file.displayPath)\" is listed in the manifest of backup \"\(name)\" but is not in the backup")
        }
    }

    /// Whether pg_verifybackup would skip a file the manifest does not list.
    private func isIgnored(_ path: [UInt8]) -> Bool {
        for prefix in ["pg_wal/", "pg_xlog/"] where path.starts(with: prefix.utf8) { return true }
        for exact in ["backup_manifest", "postgresql.auto.conf", "recovery.signal", "standby.signal"]
            where path.elementsEqual(exact.utf8) { return true }
        return false
    }

    /// A file's header: its size against the manifest's, before any of its data is used.
    func fileBegins(_ path: [UInt8], size: UInt64) throws(BackupProblem) {
        guard manifest != nil else { return }
        guard let file = expected[path] else {
            if isIgnored(path) { return }
            throw BackupProblem(.damaged, "file \"\(String(decoding: path, as: UTF8.self))\" is in backup \"\(name)\" but not in its manifest")
        }
        guard file.size == size else {
            throw BackupProblem(.damaged, "file \"\(file.displayPath)\" has size \(size) in backup \"\(name)\" but size \(file.size) in the manifest")
        }
    }

    /// A file's data is complete: its checksum against the manifest's.
    func fileEnds(_ path: [UInt8], size: UInt64, crc32c: UInt32, sha256: [UInt8]?) throws(BackupProblem) {
        guard manifest != nil else {
            pending.append((path, size, crc32c))
            seen.insert(path)
            return
        }
        seen.insert(path)
        guard let file = expected[path] else { return }
        try check(file, size: size, crc32c: crc32c, sha256: sha256)
    }

    /// Whether the data of `path` needs a SHA-256 (when the manifest says so).
    func wantsSHA256(_ path: [UInt8]) -> Bool { expected[path]?.algorithm == .sha256 }

    private func check(_ file: ManifestFile, size: UInt64, crc32c: UInt32, sha256: [UInt8]?) throws(BackupProblem) {
        guard file.size == size else {
            throw BackupProblem(.damaged, "file \"\(file.displayPath)\" has size \(size) in backup \"\(name)\" but size \(file.size) in the manifest")
        }
        let actual: [UInt8]
        switch file.algorithm {
        case .none: return
        case .crc32c:
            actual = [UInt8(truncatingIfNeeded: crc32c), UInt8(truncatingIfNeeded: crc32c >> 8),
                      UInt8(truncatingIfNeeded: crc32c >> 16), UInt8(truncatingIfNeeded: crc32c >> 24)]
        case .sha256:
            guard let sha256 else {
                throw BackupProblem(.damaged, "file \"\(file.displayPath)\" in backup \"\(name)\" has a SHA256 checksum, which walferry checks only when the manifest comes first")
            }
            actual = sha256
        case .sha224, .sha384, .sha512:
            throw BackupProblem(.damaged, "file \"\(file.displayPath)\" in the manifest of backup \"\(name)\" has a \(file.algorithm.rawValue) checksum, which walferry cannot check",
                                hints: ["Take the backup with walferry-backup, or with pg_basebackup --manifest-checksums=CRC32C or SHA256."])
        }
        guard actual == file.checksum else {
            throw BackupProblem(.damaged, "checksum mismatch for file \"\(file.displayPath)\" in backup \"\(name)\"")
        }
    }

    /// A single tarball's manifest arrived: parse it, then check what was read before it.
    func manifestArrived(_ bytes: [UInt8]) throws(BackupProblem) {
        guard manifest == nil else { return }
        let parsed = try ParsedBackupManifest(parsing: bytes, name: "\(name)/backup_manifest")
        manifest = parsed
        manifestBytes = bytes
        index(parsed)
        for file in pending {
            if file.path.elementsEqual("backup_manifest".utf8) { continue }
            guard let listed = expected[file.path] else {
                if isIgnored(file.path) { continue }
                throw BackupProblem(.damaged, "file \"\(String(decoding: file.path, as: UTF8.self))\" is in backup \"\(name)\" but not in its manifest")
            }
            // A single tarball's checksums are CRC-32C (walferry-backup writes no other kind).
            try check(listed, size: file.size, crc32c: file.crc, sha256: nil)
        }
        pending = []
    }
}

/// Reads one tarball of a backup to its end: decompresses it with `jobs` threads, parses its tar
/// stream, checks each file with `verifier`, and hands every entry to `sink`. `progress` is called
/// with the count of each run of uncompressed bytes.
///
/// Throws `.unreadable` when the tarball cannot be opened or read, `.damaged` for corrupt bzip2 data,
/// tar data or a manifest mismatch, and whatever the sink throws. Nothing is retried.
public func readBackupTarball(_ tarball: BackupTarball, verifier: BackupVerifier, sink: any BackupEntrySink,
                              jobs: Int = BZip2.defaultJobs, progress: ((Int) -> Void)? = nil) throws(BackupProblem) {
    let fd: Int32
    do {
        fd = try openPath(tarball.path, O_RDONLY | O_CLOEXEC)
    } catch {
        throw BackupProblem(.unreadable, "could not open file \"\(tarball.path)\": \(error)")
    }
    defer { _ = close(fd) }
    let feeder = TarballFeeder(tarball: tarball, verifier: verifier, sink: sink, singleTarball: verifier.manifest == nil)
    let reader = TarStreamReader(name: tarball.path.description, handler: feeder)
    var source = FileDescriptorSource(fd: fd, maxPerCall: 1 << 20)
    var tarSink = TarFeedingSink(reader: reader, progress: progress)
    do {
        try parallelDecompress(from: &source, to: &tarSink, jobs: max(1, jobs), tuning: BZip2Tuning(), onBlock: nil)
    } catch {
        if let problem = tarSink.failure { throw problem }
        switch error {
        case .read(let errno):
            throw BackupProblem(.unreadable, "could not read file \"\(tarball.path)\": \(errno)")
        default:
            throw BackupProblem(.damaged, "could not decompress file \"\(tarball.path)\": \(error)")
        }
    }
    try reader.finish()
}

/// The decoder's output going into the tar reader; a failure of the reader stops the decoder.
private struct TarFeedingSink: BZip2Sink {
    let reader: TarStreamReader
    let progress: ((Int) -> Void)?
    var failure: BackupProblem?

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(BZip2Error) {
        do {
            try reader.feed(bytes)
            progress?(bytes.count)
        } catch {
            failure = error
            throw .write(Errno(ECANCELED))
        }
    }
}

/// Between the tar reader, the verifier and the sink: prefixes paths, computes checksums, keeps a
/// single tarball's manifest member.
private final class TarballFeeder: TarEntryHandler {
    let tarball: BackupTarball
    let verifier: BackupVerifier
    let sink: any BackupEntrySink
    let singleTarball: Bool
    private var path: [UInt8] = []
    private var size: UInt64 = 0
    private var crc = CRC32C()
    private var sha: SHA256?
    private var manifestBytes: [UInt8]?

    init(tarball: BackupTarball, verifier: BackupVerifier, sink: any BackupEntrySink, singleTarball: Bool) {
        self.tarball = tarball
        self.verifier = verifier
        self.sink = sink
        self.singleTarball = singleTarball
    }

    func tarEntryBegins(_ entry: TarEntry) throws(BackupProblem) {
        let manifestPath = tarball.manifestPrefix + entry.path
        if entry.type == .regular {
            path = manifestPath
            size = 0
            crc = CRC32C()
            sha = verifier.wantsSHA256(manifestPath) ? SHA256() : nil
            let isManifest = singleTarball && manifestPath.elementsEqual("backup_manifest".utf8)
            manifestBytes = isManifest ? [] : nil
            if !isManifest { try verifier.fileBegins(manifestPath, size: entry.size) }
        }
        try sink.entryBegins(BackupEntry(tar: entry, tarball: tarball, manifestPath: manifestPath))
    }

    func tarData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem) {
        crc.update(bytes)
        sha?.update(bytes)
        if manifestBytes != nil {
            guard (manifestBytes?.count ?? 0) + bytes.count <= 1 << 30 else {
                throw BackupProblem(.damaged, "backup manifest in \"\(tarball.path)\" is too large")
            }
            manifestBytes?.append(contentsOf: bytes)
        }
        size += UInt64(bytes.count)
        try sink.fileData(bytes)
    }

    func tarFileEnds() throws(BackupProblem) {
        if let manifestBytes {
            try verifier.manifestArrived(manifestBytes)
            self.manifestBytes = nil
        } else {
            try verifier.fileEnds(path, size: size, crc32c: crc.value, sha256: sha?.finalize())
        }
        try sink.fileEnds()
    }
}
