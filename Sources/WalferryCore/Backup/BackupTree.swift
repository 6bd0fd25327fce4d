// The list of entries a base backup copies from a data directory or a tablespace, in tar order.
//
// Like the server's sendDir (basebackup.c): a recursive walk that writes each directory before its
// contents, applies BackupExclusions, keeps the directories whose contents are left out as empty
// entries, sends pg_wal as an empty directory (with archive_status, and summaries on 17+) even when it
// is a symbolic link, and skips every other symbolic link and special file with a warning, except the
// tablespace links directly in pg_tblspc, which become tarballs of their own. Unlike it, the walk is
// done before copying (the list gives the progress display its total, and keeps global/pg_control
// aside to be copied last), and each directory's names are sorted so that two backups of the same
// files are the same tarball.

/// One entry to copy.
public struct BackupTreeEntry: Sendable {
    public enum Kind: Sendable {
        case directory
        /// A regular file, with the size lstat gave during the walk: the size the tar header declares.
        case file(size: UInt64)
    }

    /// The name in the tarball, relative to the data directory or to the tablespace's location.
    public let tarPath: FilePath
    /// The path in backup_manifest, relative to the restored data directory (pg_tblspc/<oid>/… for a
    /// tablespace's files).
    public let manifestPath: FilePath
    /// Where the entry is on disk.
    public let sourcePath: FilePath
    public let kind: Kind
    public let mode: UInt32
    public let uid: UInt32
    public let gid: UInt32
    public let mtime: Int64
}

/// A tablespace found in pg_tblspc: a symbolic link named after its OID.
public struct Tablespace: Sendable, Equatable {
    public let oid: [UInt8]
    /// The link's target: the tablespace's location.
    public let location: FilePath
}

/// What the walk of a data directory found.
public struct BaseTree: Sendable {
    public var entries: [BackupTreeEntry] = []
    /// global/pg_control, copied after everything else.
    public var controlFile: BackupTreeEntry?
    public var tablespaces: [Tablespace] = []
}

/// The walker's settings.
public struct BackupTreeOptions: Sendable {
    /// PostgreSQL's major version as PG_VERSION spells it ("9.6", "15").
    public var majorVersion: String
    /// `PG_<major>_<catversion>`: the only part of a tablespace location that belongs to this cluster.
    public var tablespaceVersionDirectory: [UInt8]

    public init(majorVersion: String, catalogVersion: UInt32) {
        self.majorVersion = majorVersion
        tablespaceVersionDirectory = Array("PG_\(majorVersion)_\(catalogVersion)".utf8)
    }

    var walDirectoryName: [UInt8] { Array((majorVersion == "9.6" ? "pg_xlog" : "pg_wal").utf8) }
    var hasWALSummaries: Bool { (Int(majorVersion.prefix { $0 != "." }) ?? 0) >= 17 }
}

/// Walks the data directory `dataDirectory`. Warnings (skipped special files) go to `warn`.
public func listDataDirectory(_ dataDirectory: FilePath, options: BackupTreeOptions,
                              warn: @escaping (String) -> Void) throws(BackupFailure) -> BaseTree {
    var tree = BaseTree()
    var walker = TreeWalker(options: options, warn: warn)
    try walker.walkContents(of: dataDirectory, tarPrefix: FilePath(bytes: []), manifestPrefix: FilePath(bytes: []), depth: 0, isDataDirectoryRoot: true,
                            parentName: [], tree: &tree)
    return tree
}

/// Walks the part of a tablespace that belongs to this cluster (its version directory). Tar names
/// are relative to the location; manifest paths start with pg_tblspc/<oid>/.
public func listTablespace(_ tablespace: Tablespace, options: BackupTreeOptions,
                           warn: @escaping (String) -> Void) throws(BackupFailure) -> [BackupTreeEntry] {
    var tree = BaseTree()
    var walker = TreeWalker(options: options, warn: warn)
    let versionDirectory = tablespace.location.appending(options.tablespaceVersionDirectory)
    let manifestRoot = FilePath(bytes: Array("pg_tblspc/".utf8) + tablespace.oid)
    let status: EntryStatus
    do {
        status = try entryStatus(versionDirectory, following: true)
    } catch {
        throw BackupFailure(.failure, "could not stat tablespace directory \"\(versionDirectory)\": \(error)")
    }
    tree.entries.append(BackupTreeEntry(
        tarPath: FilePath(bytes: options.tablespaceVersionDirectory), manifestPath: manifestRoot.appending(options.tablespaceVersionDirectory),
        sourcePath: versionDirectory, kind: .directory, mode: status.mode, uid: status.uid, gid: status.gid,
        mtime: status.mtime))
    try walker.walkContents(of: versionDirectory, tarPrefix: FilePath(bytes: options.tablespaceVersionDirectory),
                            manifestPrefix: manifestRoot.appending(options.tablespaceVersionDirectory), depth: 1,
                            isDataDirectoryRoot: false, parentName: [], tree: &tree)
    return tree.entries
}

private struct TreeWalker {
    let options: BackupTreeOptions
    let warn: (String) -> Void

    /// Lists the contents of `directory`, whose tar path is `tarPrefix` and whose parent's name (in the
    /// tarball) is `parentName`.
    mutating func walkContents(of directory: FilePath, tarPrefix: FilePath, manifestPrefix: FilePath, depth: Int,
                               isDataDirectoryRoot: Bool, parentName: [UInt8], tree: inout BaseTree) throws(BackupFailure) {
        let names: [[UInt8]]
        do throws(Errno) {
            names = try directoryNames(directory)
        } catch .noSuchFileOrDirectory where depth > 0 {
            return  // removed since its parent was read (a dropped database): as the server, not an error
        } catch {
            throw BackupFailure(.failure, "could not open directory \"\(directory)\": \(error)")
        }
        let siblings = Set(names)
        // A database directory: digits, directly in base/ or in a tablespace's version directory. Names
        // are taken from the tar path, so that the data directory's own name plays no part.
        let directoryName = tarPrefix.lastComponent
        let isDatabaseDirectory = BackupExclusions.isDatabaseDirectoryName(directoryName)
            && (parentName.elementsEqual("base".utf8) || parentName == options.tablespaceVersionDirectory)
        for name in names {
            if BackupExclusions.skipsEverywhere(name) { continue }
            if isDatabaseDirectory {
                if BackupExclusions.isTemporaryRelation(name) { continue }
                if BackupExclusions.isUnloggedRelationData(name, siblings: siblings) { continue }
            }
            let source = directory.appending(name)
            let tarPath = tarPrefix.appending(name)
            let manifestPath = manifestPrefix.appending(name)
            let status: EntryStatus
            do throws(Errno) {
                status = try entryStatus(source)
            } catch .noSuchFileOrDirectory {
                continue  // vanished since readdir: the server skips it too
            } catch {
                throw BackupFailure(.failure, "could not stat file or directory \"\(source)\": \(error)")
            }
            func entry(_ kind: BackupTreeEntry.Kind, _ status: EntryStatus) -> BackupTreeEntry {
                BackupTreeEntry(tarPath: tarPath, manifestPath: manifestPath, sourcePath: source, kind: kind,
                                mode: status.mode, uid: status.uid, gid: status.gid, mtime: status.mtime)
            }

            if isDataDirectoryRoot && name == options.walDirectoryName {
                // Only the directory (a symbolic link to one included), never the WAL itself: the backup
                // gets its WAL from the archive.
                let target = status.kind == .symlink ? ((try? entryStatus(source, following: true)) ?? status) : status
                let walDirectory = entry(.directory, target)
                tree.entries.append(walDirectory)
                var subdirectories = ["archive_status"]
                if options.hasWALSummaries { subdirectories.append("summaries") }
                for sub in subdirectories {
                    tree.entries.append(BackupTreeEntry(
                        tarPath: tarPath.appending(sub), manifestPath: manifestPath.appending(sub),
                        sourcePath: source.appending(sub), kind: .directory, mode: walDirectory.mode,
                        uid: walDirectory.uid, gid: walDirectory.gid, mtime: walDirectory.mtime))
                }
                continue
            }
            if tarPrefix.bytes.elementsEqual("pg_tblspc".utf8) && manifestPrefix.bytes.elementsEqual("pg_tblspc".utf8)
                && status.kind == .symlink {
                do {
                    tree.tablespaces.append(Tablespace(oid: name, location: try symbolicLinkTarget(source)))
                } catch {
                    throw BackupFailure(.failure, "could not read symbolic link \"\(source)\": \(error)")
                }
                continue
            }
            switch status.kind {
            case .directory:
                tree.entries.append(entry(.directory, status))
                if BackupExclusions.directoriesWithoutContents.contains(name) { continue }
                try walkContents(of: source, tarPrefix: tarPath, manifestPrefix: manifestPath, depth: depth + 1,
                                 isDataDirectoryRoot: false, parentName: directoryName, tree: &tree)
            case .regular:
                if tarPrefix.bytes.elementsEqual("global".utf8) && manifestPrefix.bytes.elementsEqual("global".utf8)
                    && name.elementsEqual("pg_control".utf8) {
                    tree.controlFile = entry(.file(size: status.size), status)
                    continue
                }
                tree.entries.append(entry(.file(size: status.size), status))
            case .symlink, .other:
                warn("skipping special file \"\(source)\"")
            }
        }
    }
}

/// The tablespaces in pg_tblspc (symbolic links named by OID).
func listTablespaces(_ dataDirectory: FilePath) throws(BackupFailure) -> [Tablespace] {
    let directory = dataDirectory.appending("pg_tblspc")
    let names: [[UInt8]]
    do {
        names = try directoryNames(directory)
    } catch {
        throw BackupFailure(.failure, "could not open directory \"\(directory)\": \(error)")
    }
    var result: [Tablespace] = []
    for name in names {
        let path = directory.appending(name)
        guard (try? entryStatus(path))?.kind == .symlink, let target = try? symbolicLinkTarget(path) else { continue }
        result.append(Tablespace(oid: name, location: target))
    }
    return result
}
