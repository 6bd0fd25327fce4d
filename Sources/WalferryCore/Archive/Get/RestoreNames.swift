// walferry-restore's rules for its two arguments: SOURCE is the archive path of a WAL file name
// (`/mnt/archive/%f`, or `%f.bz2` to look for that form first), DEST is where the server wants it
// (`%p`: pg_wal/RECOVERYXLOG or RECOVERYHISTORY, or pg_rewind's path ending in the file's name).
//
// Like the checks cp cannot make: a swapped pair, a directory, `pg_wal/%f` instead of `%p`, each get a
// usage error (exit 200 in targeted recovery) with a hint naming the likely mistake, instead of a
// "not found" that the server would take for the end of the archive.

import Glibc

/// The file names the server gives as the last component of `%p`.
let serverDestinationNames: Set<String> = ["RECOVERYXLOG", "RECOVERYHISTORY"]

extension Restorer {
    struct Names {
        let archivePath: String
        /// The requested file, without compression suffix.
        let wanted: WALFileName
        /// The archive names to look for, in order.
        let candidates: [String]
    }

    func checkNames() throws(RestoreFailure) -> Names {
        let (archivePath, sourceName) = splitPath(request.source)
        guard let parsed = WALFileName(sourceName), parsed.compression == nil || parsed.compression == .bzip2 else {
            throw RestoreFailure(.usage, "\"\(request.source)\" is not the archive path of a WAL file",
                                 hint: sourceHint(sourceName))
        }
        let wanted = parsed.uncompressed
        let plain = wanted.description

        let destinationName = splitPath(request.destination).name
        let usageHint = "DEST is %p: restore_command = 'walferry-restore /mnt/archive/%f %p'"
        if destinationName.isEmpty || (try? fileType(atPath: FilePath(request.destination))) == .directory {
            throw RestoreFailure(.usage, "\"\(request.destination)\" is a directory", hint: usageHint)
        }
        guard serverDestinationNames.contains(destinationName) || destinationName == plain else {
            var hint = usageHint
            if WALFileName(destinationName) != nil || destinationName.hasSuffix(".bz2") {
                hint = "DEST is named after another file than SOURCE; " + usageHint
            }
            throw RestoreFailure(.usage,
                                 "\"\(request.destination)\" is neither the server's %p (RECOVERYXLOG, RECOVERYHISTORY) nor a path ending in \"\(plain)\"",
                                 hint: hint)
        }
        // `pg_wal/%f` instead of `%p`: the server would not find the file where it looks (RECOVERYXLOG)
        // and take it for missing. pg_rewind's %p is `<data directory>/pg_wal/%f`, never this string.
        if request.destination == "pg_wal/" + plain && DataDirectory.working.isDataDirectory {
            throw RestoreFailure(.usage, "\"\(request.destination)\" is not where the server reads the restored file",
                                 hint: "DEST is %p (pg_wal/RECOVERYXLOG), not pg_wal/%f: restore_command = 'walferry-restore /mnt/archive/%f %p'")
        }
        return Names(archivePath: archivePath, wanted: wanted,
                     candidates: ArchiveDirectory.candidates(for: plain, compressedFirst: parsed.compression == .bzip2))
    }

    func sourceHint(_ sourceName: String) -> String {
        if serverDestinationNames.contains(sourceName) || request.source.hasPrefix("pg_wal/") || request.source.contains("/pg_wal/") {
            return "SOURCE and DEST are swapped: restore_command = 'walferry-restore /mnt/archive/%f %p'"
        }
        if sourceName.isEmpty || (try? fileType(atPath: FilePath(request.source))) == .directory {
            return "SOURCE is the archive directory followed by %f: restore_command = 'walferry-restore /mnt/archive/%f %p'"
        }
        if let name = WALFileName(sourceName), let compression = name.compression {
            return "walferry-restore reads bzip2 files only, not \(compression.suffix)."
        }
        return "SOURCE is the archive path of %f: restore_command = 'walferry-restore /mnt/archive/%f %p'"
    }
}
