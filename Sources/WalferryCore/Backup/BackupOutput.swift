// Where a backup goes, how it becomes visible only once complete, and the lock that keeps two runs
// apart.
//
// Like pg_basebackup -Ft -D DIR (base.tar, <oid>.tar, backup_manifest side by side), except that the
// files are written in a hidden temporary directory inside DIR and the directory is renamed to its
// final name, a UTC timestamp, only after every file and the directory itself were fsynced: a crash or
// a kill never leaves anything that looks like a complete backup. Like `pg_basebackup -D - -Ft` for a
// single tarball on standard output (with backup_manifest as its last member), and the same through a
// temporary file renamed into place for `-o FILE`.

import Glibc

/// Where walferry-backup writes, decided from -o.
public enum BackupDestination: Sendable, Equatable {
    /// A directory receiving one timestamped backup directory per run.
    case directory(String)
    /// A single tarball, written under a temporary name and renamed.
    case file(String)
    /// A single tarball on standard output.
    case standardOutput

    /// "-" is standard output, an existing directory is a directory of backups, anything else names a
    /// file to create, in a directory that exists.
    public static func resolve(_ argument: String) throws(BackupFailure) -> BackupDestination {
        if argument == "-" { return .standardOutput }
        let path = FilePath(argument)
        let status: EntryStatus
        do throws(Errno) {
            status = try entryStatus(path, following: true)
        } catch .noSuchFileOrDirectory {
            if argument.hasSuffix("/") {
                throw BackupFailure(.usage, "output directory \"\(argument)\" does not exist",
                                    hints: ["Create it first: walferry-backup does not create the backup directory itself."])
            }
            let parent = path.parent
            guard (try? entryStatus(parent, following: true))?.kind == .directory else {
                throw BackupFailure(.usage, "directory \"\(parent)\" of output file \"\(argument)\" does not exist")
            }
            return .file(argument)
        } catch {
            throw BackupFailure(.usage, "could not access output \"\(argument)\": \(error)")
        }
        if status.kind == .directory { return .directory(argument) }
        throw BackupFailure(.usage, "output file \"\(argument)\" already exists",
                            hints: ["Give a directory to -o for backups that run again and again: each run makes a timestamped directory in it."])
    }

    /// The directory that holds the lock file, or nil for standard output.
    var lockDirectory: FilePath? {
        switch self {
        case .directory(let path): FilePath(path)
        case .file(let path): FilePath(path).parent
        case .standardOutput: nil
        }
    }
}

/// The name of the lock file, in the output directory (or the output file's directory).
public let backupLockFileName = ".walferry-backup.lock"

/// The prefix of temporary backup directories and files; retention and the next run remove leftovers.
let partialPrefix = ".walferry-backup-partial-"

/// An exclusive lock on an output directory, held until the process exits or `release` is called.
///
/// flock(2) on a lock file that is never removed (removing it would let two runs lock two different
/// files under the same name). The kernel drops the lock when the process dies, however it dies, so a
/// crashed run never blocks the next one.
final class BackupLock {
    private var fd: Int32

    /// Takes the lock or fails at once. The corresponding C functions are `open` and `flock`.
    init(directory: FilePath) throws(BackupFailure) {
        let path = directory.appending(backupLockFileName)
        do {
            fd = try openPath(path, O_RDWR | O_CREAT, mode: 0o600)
        } catch {
            throw BackupFailure(.failure, "could not open lock file \"\(path)\": \(error)")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = Errno.current
            if error == .interrupted { continue }
            _ = close(fd)
            if error.rawValue == EWOULDBLOCK {
                throw BackupFailure(.locked, "another walferry-backup is already writing to \"\(directory)\"",
                                    hints: ["Wait for it to finish, or space the cron entries further apart; the lock is \"\(path)\"."])
            }
            throw BackupFailure(.failure, "could not lock file \"\(path)\": \(error)")
        }
    }

    deinit { release() }

    func release() {
        if fd >= 0 { _ = close(fd) }
        fd = -1
    }
}

/// The name of a backup directory: the start time in UTC, "20250131T235959Z".
public func backupDirectoryName(_ seconds: Int64) -> String {
    let t = utcComponents(seconds)
    return "\(zeroPadded(t.year, 4))\(zeroPadded(t.month, 2))\(zeroPadded(t.day, 2))T"
        + "\(zeroPadded(t.hour, 2))\(zeroPadded(t.minute, 2))\(zeroPadded(t.second, 2))Z"
}

/// True for a name `backupDirectoryName` makes, with an optional "-N" added when a backup of the same
/// second exists.
public func isBackupDirectoryName(_ name: [UInt8]) -> Bool {
    guard name.count >= 16 else { return false }
    let digit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    guard name[0..<8].allSatisfy(digit), name[8] == UInt8(ascii: "T"), name[9..<15].allSatisfy(digit),
          name[15] == UInt8(ascii: "Z") else { return false }
    let rest = name[16...]
    if rest.isEmpty { return true }
    return rest.count >= 2 && rest.first == UInt8(ascii: "-") && rest.dropFirst().allSatisfy(digit)
}

/// The files of one backup being written.
final class BackupOutputFiles {
    let destination: BackupDestination
    /// The temporary directory (directory mode) or file (file mode) to remove if the backup fails.
    private(set) var partialPath: FilePath?
    private var openFiles: [(fd: Int32, path: FilePath)] = []
    /// The final directory or file, once renamed into place.
    private(set) var finalPath: FilePath?
    private let startSeconds: Int64

    init(destination: BackupDestination, startSeconds: Int64) {
        self.destination = destination
        self.startSeconds = startSeconds
    }

    /// Removes what earlier runs that crashed left behind (only temporary names; the caller holds the
    /// lock, so none belongs to a running backup), then creates this run's temporary directory.
    func prepare() throws(BackupFailure) {
        guard case .directory(let directory) = destination else { return }
        let root = FilePath(directory)
        do {
            for name in try directoryNames(root) where name.starts(with: partialPrefix.utf8) {
                try removeTree(root.appending(name))
            }
        } catch {
            throw BackupFailure(.failure, "could not remove leftovers of an earlier run in \"\(directory)\": \(error)")
        }
        let temporary = root.appending((partialPrefix + backupDirectoryName(startSeconds)))
        do {
            try makeDirectory(temporary)
        } catch {
            throw BackupFailure(.failure, "could not create directory \"\(temporary)\": \(error)")
        }
        partialPath = temporary
    }

    /// Opens an output tarball: `name` in the temporary directory, the temporary file, or standard
    /// output. Returns its descriptor and its name for messages.
    func open(tarball name: String) throws(BackupFailure) -> (fd: Int32, displayName: String) {
        let path: FilePath
        switch destination {
        case .standardOutput:
            return (1, "standard output")
        case .directory:
            guard let partialPath else { throw BackupFailure(.failure, "internal error: output not prepared") }
            path = partialPath.appending(name)
        case .file(let file):
            let final = FilePath(file)
            path = final.parent.appending(Array(partialPrefix.utf8) + final.lastComponent)
            partialPath = path
        }
        let fd: Int32
        do {
            fd = try openPath(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        } catch {
            throw BackupFailure(.failure, "could not create file \"\(path)\": \(error)")
        }
        openFiles.append((fd, path))
        return (fd, "file \"\(path)\"")
    }

    /// Writes a small file (backup_manifest) into the temporary directory.
    func writeFile(_ name: String, _ contents: [UInt8]) throws(BackupFailure) {
        let (fd, displayName) = try open(tarball: name)
        let failure = contents.withUnsafeBytes { writeAll(fd, $0) }
        if let failure { throw BackupFailure(.failure, "could not write to \(displayName): \(failure)") }
    }

    /// Makes everything durable and visible: fsync every file and close it, fsync the temporary
    /// directory, rename it (or the file) to its final name, fsync the parent. Returns the final path.
    func commit() throws(BackupFailure) -> FilePath? {
        for file in openFiles {
            do {
                try syncDescriptor(file.fd)
            } catch {
                throw BackupFailure(.failure, "could not fsync file \"\(file.path)\": \(error)")
            }
            if close(file.fd) != 0 {
                throw BackupFailure(.failure, "could not close file \"\(file.path)\": \(Errno.current)")
            }
        }
        openFiles = []
        switch destination {
        case .standardOutput:
            // A regular file behind the redirection can be made durable too; a pipe cannot (EINVAL).
            if fsync(1) != 0 && errno != EINVAL && errno != EROFS {
                throw BackupFailure(.failure, "could not fsync standard output: \(Errno.current)")
            }
            return nil
        case .directory(let directory):
            guard let partialPath else { return nil }
            let root = FilePath(directory)
            try sync(directory: partialPath)
            var suffix = 1
            while true {
                let name = backupDirectoryName(startSeconds) + (suffix == 1 ? "" : "-\(suffix)")
                let target = root.appending(name)
                do throws(Errno) {
                    try renameNoReplace(partialPath, target)
                    finalPath = target
                    break
                } catch .fileExists {
                    suffix += 1  // a backup of the same second exists: keep both
                    if suffix > 1000 { throw BackupFailure(.failure, "could not find a free name in \"\(directory)\"") }
                } catch {
                    throw BackupFailure(.failure, "could not rename directory \"\(partialPath)\" to \"\(target)\": \(error)")
                }
            }
            self.partialPath = nil
            try sync(directory: root)
            return finalPath
        case .file(let file):
            guard let partialPath else { return nil }
            let target = FilePath(file)
            do {
                try renameNoReplace(partialPath, target)
            } catch {
                throw BackupFailure(.failure, "could not rename file \"\(partialPath)\" to \"\(file)\": \(error)")
            }
            self.partialPath = nil
            finalPath = target
            try sync(directory: target.parent)
            return target
        }
    }

    /// Removes the partial output after a failure. Returns an error message when that failed too.
    func discard() -> String? {
        for file in openFiles where file.fd != 1 { _ = close(file.fd) }
        openFiles = []
        guard let partialPath else { return nil }
        self.partialPath = nil
        do {
            try removeTree(partialPath)
        } catch {
            return "could not remove partial backup \"\(partialPath)\": \(error)"
        }
        return nil
    }

    private func sync(directory: FilePath) throws(BackupFailure) {
        do {
            try syncDirectory(directory)
        } catch {
            throw BackupFailure(.failure, "could not fsync directory \"\(directory)\": \(error)")
        }
    }
}
