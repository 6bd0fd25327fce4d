// Writing a backup's entries to disk for walferry-recover: the data directory's tarball into a
// temporary sibling of the target, each tablespace's into a temporary name inside its location.
//
// Like `tar -xf` run as the target's owner, except that:
// - every entry is created new (O_EXCL, O_NOFOLLOW, mkdir): nothing that exists is written through
//   or over, and no symbolic link is followed or made from the tarball (pg_tblspc links are made
//   afterwards from tablespace_map, RecoverTablespaces.swift);
// - run as root, every entry is given to the owner chosen (fchown on the descriptor, lchown for
//   links), as it is created, so that no file is ever left owned by root;
// - writeback of each file is started as it is closed (sync_file_range), so that the one syncfs(2)
//   at the end (Recover.swift) finds little left to write;
// - the reading stops at the next megabyte when a signal trips the flag.

import CWalferrySystem
import Glibc

/// Where the entries of each tarball go.
struct ExtractionLayout {
    /// The temporary data directory.
    let root: FilePath
    /// For each tablespace OID, its location: the tarball's entries (its version directory, such as
    /// PG_15_202209061) are written inside `location/tablespacePartialName` and renamed at the end.
    var tablespaces: [String: FilePath] = [:]
}

/// A flag the signal thread trips and the extracting thread checks.
final class RecoverAbortFlag: @unchecked Sendable {
    // @unchecked: `signal` is read and written only with `lock` held.
    private let lock = ConditionLock()
    private var signal: Int32?

    func trip(_ number: Int32) { lock.withLock { if signal == nil { signal = number } } }
    var current: Int32? { lock.withLock { signal } }

    func check() throws(BackupProblem) {
        if let number = current {
            throw BackupProblem(.interrupted, "interrupted by signal \(number) (\(signalName(number)))")
        }
    }
}

/// The sink that writes.
final class ExtractingSink: BackupEntrySink {
    var layout: ExtractionLayout
    let owner: (uid: UInt32, gid: UInt32)?
    let abort: RecoverAbortFlag
    let progress: BackupProgress?
    private var fd: Int32 = -1
    private var path = FilePath(bytes: [])
    /// pg_tblspc/<oid> links found in the base tarball (pg_basebackup writes them): OID to target.
    private(set) var tablespaceLinks: [String: [UInt8]] = [:]
    /// tablespace_map's contents, kept as they stream by.
    private(set) var tablespaceMap: [UInt8]?
    private var capturingMap = false
    /// Regular files written, for the summary.
    private(set) var filesWritten = 0

    init(layout: ExtractionLayout, owner: (uid: UInt32, gid: UInt32)?, abort: RecoverAbortFlag, progress: BackupProgress?) {
        self.layout = layout
        self.owner = owner
        self.abort = abort
        self.progress = progress
    }

    deinit { if fd >= 0 { _ = close(fd) } }

    /// Where an entry goes.
    private func destination(_ entry: BackupEntry) throws(BackupProblem) -> FilePath {
        guard let oid = entry.tarball.tablespaceOID else { return layout.root.appending(entry.tar.path) }
        guard let location = layout.tablespaces[oid] else {
            throw BackupProblem(.damaged, "tablespace \(oid) of file \"\(entry.tarball.path)\" is not in the backup's tablespace_map")
        }
        return location.appending(tablespacePartialName).appending(entry.tar.path)
    }

    func entryBegins(_ entry: BackupEntry) throws(BackupProblem) {
        try abort.check()
        let target = try destination(entry)
        switch entry.tar.type {
        case .directory:
            try makeDirectories(target, mode: entry.tar.mode)
        case .symbolicLink:
            let components = entry.manifestPath.split(separator: UInt8(ascii: "/"))
            if entry.tarball.tablespaceOID == nil, components.count == 2, components[0].elementsEqual("pg_tblspc".utf8) {
                tablespaceLinks[String(decoding: components[1], as: UTF8.self)] = entry.tar.linkTarget
                return
            }
            throw BackupProblem(.damaged, "unexpected symbolic link \"\(entry.tar.displayPath)\" in file \"\(entry.tarball.path)\"",
                                hints: ["Only pg_tblspc/<oid> may be a link in a backup's tarball."])
        case .regular:
            capturingMap = entry.tarball.tablespaceOID == nil && entry.tar.path.elementsEqual("tablespace_map".utf8)
            if capturingMap { tablespaceMap = [] }
            let mode = mode_t((entry.tar.mode & 0o777) | 0o600)
            var opened = target.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
            if opened < 0 && errno == ENOENT {
                try makeDirectories(target.parent, mode: 0o700)
                opened = target.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
            }
            guard opened >= 0 else {
                throw BackupProblem(.output, "could not create file \"\(target)\": \(Errno.current)")
            }
            fd = opened
            path = target
            if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
                throw BackupProblem(.output, "could not change the owner of file \"\(target)\": \(Errno.current)")
            }
        }
    }

    func fileData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem) {
        try abort.check()
        if let failure = writeAll(fd, bytes) {
            throw BackupProblem(.output, "could not write to file \"\(path)\": \(failure)")
        }
        if capturingMap { tablespaceMap?.append(contentsOf: bytes) }
        progress?.advance(UInt64(bytes.count))
    }

    func fileEnds() throws(BackupProblem) {
        capturingMap = false
        guard fd >= 0 else { return }
        _ = walferry_start_writeback(fd)
        let closed = close(fd)
        fd = -1
        if closed != 0 { throw BackupProblem(.output, "could not close file \"\(path)\": \(Errno.current)") }
        filesWritten += 1
    }

    /// mkdir -p, each new directory given to the owner.
    func makeDirectories(_ target: FilePath, mode: UInt32) throws(BackupProblem) {
        let made = target.withCString { mkdir($0, mode_t((mode & 0o777) | 0o700)) }
        if made == 0 {
            if let owner, lchown(target.description, owner.uid, owner.gid) != 0 {
                throw BackupProblem(.output, "could not change the owner of directory \"\(target)\": \(Errno.current)")
            }
            return
        }
        switch errno {
        case EEXIST:
            guard (try? entryStatus(target))?.kind == .directory else {
                throw BackupProblem(.output, "could not create directory \"\(target)\": \(Errno.fileExists)")
            }
        case ENOENT where target.parent != target && !target.parent.isEmpty:
            try makeDirectories(target.parent, mode: 0o700)
            try makeDirectories(target, mode: mode)
        default:
            throw BackupProblem(.output, "could not create directory \"\(target)\": \(Errno.current)")
        }
    }
}
