// The archive directories a data directory has started: a guard against the unmounted share.
//
// An archive that is a mount point raises one more danger: when the share is not mounted, the empty
// mount-point directory looks like a new archive, and a cp would fill the local disk with WAL that
// nobody will find. So the first time walferry-archive creates an identity record for an archive
// directory, it also notes that directory in the data directory (`walferry.archives`, one absolute
// path a line; archive_command runs in the data directory). Later, an archive directory that the data
// directory knows but that has no identity record is refused, naming the likely cause (the share is
// not mounted), until the DBA removes the line to start a new archive there on purpose.
//
// Like pgBackRest's check that the stanza's archive.info exists before it pushes, but kept on the
// server's side, where the unmounted share cannot hide it.

import Glibc

/// The archive directories this data directory has started (see the file header): the file
/// `walferry.archives` in the working directory, when that is a data directory.
public enum KnownArchives {
    public static let fileName = "walferry.archives"

    /// The noted archive directories (empty when the file does not exist or cannot be read).
    public static func read(in dataDirectory: DataDirectory = .working) -> [String] {
        guard let bytes = try? readWholeFile(dataDirectory.path.appending(fileName)) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Adds `directory` to the file (append, then fsync the file; it is created with mode 0600).
    public static func note(_ directory: String, in dataDirectory: DataDirectory = .working) throws(Errno) {
        let fd = try openPath(dataDirectory.path.appending(fileName), O_WRONLY | O_APPEND | O_CREAT, mode: 0o600)
        defer { close(fd) }
        var line = directory + "\n"
        if let error = line.withUTF8({ writeAll(fd, UnsafeRawBufferPointer($0)) }) { throw error }
        try syncDescriptor(fd)
    }
}
