// walferry-archive's work: copy one WAL file from pg_wal into the archive, for archive_command.
//
// Like `test ! -f DEST && cp SOURCE DEST` (the documented example) and PostgreSQL's basic_archive,
// but durable, atomic, verified and strict:
// - the copy goes to a temporary name in the archive directory, is fsynced, read back past the page
//   cache and compared byte for byte with SOURCE (for `.bz2`: decompressed and checked against the
//   CRC-32C taken while SOURCE was compressed), then published with link(2), which never replaces a
//   file, and the directory is fsynced (basic_archive renames, which would replace a file that
//   appeared meanwhile, and does not verify);
// - a file archived before with identical contents (also in the other form, with or without `.bz2`)
//   is success after making sure it is durable; different contents are an error naming the offset of
//   the first difference, and nothing is replaced;
// - a segment's header is checked against its name, its size and the archive's identity record
//   (ArchiveIdentity.swift), and its every page and record as the server will read them, so that a
//   truncated or damaged file, a file of another cluster or an unmounted archive share is refused
//   instead of archived;
// - every failure exits with a status from 1 to 125, which the archiver retries; an interruption
//   removes the temporary file and exits 1 rather than dying by the signal.

import Glibc

/// The exit statuses of walferry-archive. All failures are below 126: the archiver retries them.
public enum ArchiveExitStatus: Int32, ToolExitStatus, CaseIterable {
    /// The file is in the archive and durable (copied now, or found there with identical contents).
    case success = 0
    /// An I/O error (reading SOURCE, writing or syncing the archive, a full file system), a missing
    /// SOURCE or archive directory, or an interruption.
    case failure = 1
    /// Bad arguments: not a WAL file name, DEST not named after SOURCE, an unknown option.
    case usage = 2
    /// DEST (or the same file in the other form) exists with different contents; it was left as it is.
    case conflict = 3
    /// SOURCE is not a sound WAL segment (size, magic, page address or timeline against its name, or a
    /// page header or record past the first page that the server could not read).
    case invalidWAL = 4
    /// The archive belongs to another cluster, or its identity record is missing where this cluster
    /// wrote one before (an unmounted share).
    case identity = 5
    /// The copy read back from the archive does not match what was read from SOURCE.
    case verification = 6
    /// Another walferry-archive is writing the same file right now.
    case busy = 7
}

/// What walferry-archive was asked to do.
public struct ArchiveRequest: Sendable {
    /// `%p`: the file to archive, relative to the data directory (the working directory).
    public var source: String
    /// The archive path: the archive directory and `%f`, or `%f.bz2` to compress.
    public var destination: String
    /// The archived file's permission bits; nil for SOURCE's.
    public var mode: mode_t?
    /// Compression threads for `.bz2`.
    public var jobs: Int = BZip2.defaultJobs
    /// Where the published bytes are read back from for verification.
    public var verification: Verification = .storage

    /// Where verification reads the copy back from.
    public enum Verification: String, Sendable, CaseIterable {
        /// From the storage: the file's cached pages are dropped first (local disks, NFS), so the
        /// read-back sees what the file system holds. Costs a second read of every segment.
        case storage
        /// From the page cache: checks everything walferry and the kernel did with the bytes, but not
        /// what the device or the NFS server stored. About half the I/O.
        case cache
    }

    public init(source: String, destination: String) {
        self.source = source
        self.destination = destination
    }
}

/// Archives one file, printing PostgreSQL-style messages, and returns the exit status.
public func runArchive(_ request: ArchiveRequest, console: Console) -> ArchiveExitStatus {
    do throws(ArchiveFailure) {
        try Archiver(request: request, console: console).run()
        return .success
    } catch {
        error.report(to: console)
        return error.status
    }
}

/// The unit walferry-archive reads, writes and compares in.
let archiveChunkSize = 4 << 20

/// One run of walferry-archive. Its steps: this file (names, identity, the order of the work),
/// PushCompare.swift (a copy archived before), PushCopy.swift (copying and verifying).
struct Archiver {
    let request: ArchiveRequest
    let console: Console

    func run() throws(ArchiveFailure) {
        let sourceName = splitPath(request.source).name
        let (archivePath, destinationName) = splitPath(request.destination)
        let name = try checkNames(sourceName: sourceName, destinationName: destinationName)
        let compress = destinationName.hasSuffix(".bz2")

        let archive: ArchiveDirectory
        do {
            archive = try ArchiveDirectory(path: archivePath)
        } catch {
            throw ArchiveFailure(.failure, "could not open archive directory \"\(archivePath)\": \(error)",
                                 hint: error == .noSuchFileOrDirectory ? "Is the archive file system mounted?" : nil)
        }

        let source = try SourceFile(path: request.source, name: name, console: console)
        defer { close(source.fd) }

        if let identity = source.identity { try checkIdentity(identity, archive: archive) }

        // Archived before? Then it must be the same WAL, in either form.
        for candidate in ArchiveDirectory.candidates(for: sourceName, compressedFirst: compress) {
            if try compareExisting(candidate, in: archive, with: source) {
                let form = candidate == destinationName ? "" : " (as \"\(archivePath)/\(candidate)\")"
                console.info("archive file \"\(archivePath)/\(destinationName)\" already exists with identical contents\(form)")
                return
            }
        }

        let mode = request.mode ?? source.mode
        let temporary: TemporaryFile
        do {
            temporary = try TemporaryFile(in: archive.handle, finalName: destinationName, mode: 0o600)
        } catch {
            throw publishFailure(error, archive: archive, name: destinationName)
        }
        let tempPath = "\(archivePath)/\(temporary.temporaryName)"

        if compress {
            let checksum = try copyCompressed(source, to: temporary, tempPath: tempPath)
            try syncTemporary(temporary, mode: mode, tempPath: tempPath)
            try verifyCompressed(temporary, expected: checksum, length: source.size, tempPath: tempPath)
        } else {
            let mapping = try mapSource(source)
            do throws(Errno) {
                try temporary.write(mapping.bytes)
            } catch {
                throw ArchiveFailure(.failure, "could not write file \"\(tempPath)\": \(error)")
            }
            try syncTemporary(temporary, mode: mode, tempPath: tempPath)
            try verifyPlain(temporary, against: mapping.bytes, tempPath: tempPath)
        }

        do {
            notePublication(try temporary.publish(), in: archive)
        } catch .exists {
            // Published by someone else between our check and our link: the same rules apply.
            if try compareExisting(destinationName, in: archive, with: source) { return }
            throw ArchiveFailure(.conflict, "archive file \"\(archivePath)/\(destinationName)\" appeared while it was being written")
        } catch {
            throw publishFailure(error, archive: archive, name: destinationName)
        }
    }

    // MARK: - Names

    func checkNames(sourceName: String, destinationName: String) throws(ArchiveFailure) -> WALFileName {
        // Both file names must be WAL names, and DEST's the same as SOURCE's: so neither name can lead
        // out of its directory. The directories are the DBA's configuration and used as given.
        guard let name = WALFileName(sourceName), name.compression == nil else {
            var hint = "SOURCE is %p: the path of a segment, .partial, .backup or .history file under pg_wal."
            if sourceName == "RECOVERYXLOG" || sourceName == "RECOVERYHISTORY" {
                hint = "\"\(sourceName)\" is restore_command's %p; archive_command takes walferry-archive, restore_command walferry-restore."
            }
            throw ArchiveFailure(.usage, "\"\(request.source)\" is not a WAL file name", hint: hint)
        }
        guard destinationName == sourceName || destinationName == sourceName + ".bz2" else {
            var hint = "DEST must end with %f, or %f.bz2 to compress: walferry-archive %p /mnt/archive/%f"
            if let other = WALFileName(destinationName), other.uncompressed == name, other.compression != nil {
                hint = "walferry-archive compresses with bzip2 only: use %f.bz2."
            } else if destinationName.isEmpty || (try? fileType(atPath: FilePath(request.destination))) == .directory {
                hint = "DEST is the archived file's path, not the archive directory: walferry-archive %p /mnt/archive/%f"
            } else if destinationName.hasPrefix("pg_wal") || request.destination.contains("/pg_wal/") {
                hint = "DEST ends with %f (the file name), not %p (its path under pg_wal)."
            }
            throw ArchiveFailure(.usage,
                                 "archive file name \"\(destinationName)\" does not match \"\(sourceName)\"", hint: hint)
        }
        return name
    }

    // MARK: - Identity

    func checkIdentity(_ segment: ArchiveIdentity, archive: ArchiveDirectory) throws(ArchiveFailure) {
        for _ in 0..<2 {
            if let existing = try readIdentity(archive) {
                guard existing == segment else {
                    throw ArchiveFailure(.identity,
                                         "WAL file \"\(request.source)\" (\(segment)) does not belong in archive \"\(archive.path)\" (\(existing))",
                                         hint: existing.systemIdentifier == segment.systemIdentifier
                                            ? "A new PostgreSQL version or segment size needs a new archive directory."
                                            : "Is archive_command pointing at another cluster's archive?")
                }
                return
            }
            // No record: a new archive, unless this data directory has started one here before.
            let inDataDirectory = DataDirectory.working.isDataDirectory
            let absolute = absolutePath(archive.path)
            if inDataDirectory && KnownArchives.read().contains(absolute) {
                throw ArchiveFailure(.identity,
                                     "archive \"\(archive.path)\" has no identity record \"\(ArchiveIdentity.fileName)\", but this cluster has archived to it before",
                                     hint: "Is the archive file system mounted? To start a new archive there on purpose, remove \"\(absolute)\" from \(KnownArchives.fileName) in the data directory.")
            }
            let publication: Publication
            do throws(ArchiveDirectory.IdentityCreationError) {
                guard let created = try archive.createIdentity(segment) else { continue }  // another archiver created it first: compare theirs
                publication = created
            } catch {
                switch error {
                case .publish(let failure): throw publishFailure(failure, archive: archive, name: ArchiveIdentity.fileName)
                case .write(let temporaryName, let errno):
                    throw ArchiveFailure(.failure, "could not write file \"\(archive.path(of: temporaryName))\": \(errno)")
                }
            }
            if inDataDirectory {
                do throws(Errno) {
                    try KnownArchives.note(absolute)
                } catch {
                    throw ArchiveFailure(.failure, "could not write file \"\(KnownArchives.fileName)\" in the data directory: \(error)")
                }
            }
            console.info("created archive identity record \"\(archive.identityPath)\": \(segment)")
            notePublication(publication, in: archive)
            return
        }
    }

    /// The archive's identity record, or nil when it has none.
    func readIdentity(_ archive: ArchiveDirectory) throws(ArchiveFailure) -> ArchiveIdentity? {
        do throws(ArchiveDirectory.IdentityError) {
            return try archive.readIdentity()
        } catch {
            switch error {
            case .missing: return nil
            case .invalid: throw invalidIdentityRecord(archive, status: ArchiveExitStatus.identity)
            case .io(let step, let errno): throw ArchiveFailure(.failure, "could not \(step) file \"\(archive.identityPath)\": \(errno)")
            }
        }
    }

    /// Says, once per archive, that its file system refuses link(2) and how files are published there
    /// instead (the archive keeps a note of it, `.walferry-publication`).
    func notePublication(_ publication: Publication, in archive: ArchiveDirectory) {
        guard publication != .link, archive.notePublication(publication) else { return }
        console.info("the file system of archive \"\(archive.path)\" refuses link(2): files are published with \(publication.rawValue)")
    }

    func publishFailure(_ error: PublishError, archive: ArchiveDirectory, name: String) -> ArchiveFailure {
        let temporaryPath = archive.path(of: TemporaryFile.temporaryName(for: name))
        switch error {
        case .exists:
            return ArchiveFailure(.conflict, "archive file \"\(archive.path)/\(name)\" already exists")
        case .busy:
            return ArchiveFailure(.busy, "another process is writing \"\(temporaryPath)\"",
                                  hint: "Two archivers write the same file; is the same archive_command running on two servers?")
        case .failed(let step, let errno):
            let hint = errno.rawValue == EROFS || errno == .permissionDenied
                ? "The archive directory must be writable by the server's operating-system user." : nil
            return ArchiveFailure(.failure, "could not \(step) \"\(temporaryPath)\": \(errno)", hint: hint)
        case .directorySync(let errno):
            return ArchiveFailure(.failure, "could not fsync directory \"\(archive.path)\": \(errno)")
        }
    }
}
