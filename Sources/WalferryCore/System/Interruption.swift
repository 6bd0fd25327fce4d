// What happens when the server stops a tool midway: SIGTERM (fast shutdown), SIGINT, SIGQUIT
// (immediate shutdown) or SIGHUP. The handler removes the one temporary file being written, if any,
// and ends the process with the status the tool chose, so that nothing half-written stays behind and
// the process never dies by a signal (which the archiver would treat as fatal).
//
// Like a signal handler that sets a flag, except that it acts at once: everything it does (unlinkat,
// _exit) is async-signal-safe, and the name it removes was copied beforehand into memory that is never
// freed or moved.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum Interruption {
    /// The registered temporary entry: a directory descriptor (-1 when none) and a NUL-terminated name.
    /// Written only outside the handler, read only by it; signals are blocked while it changes.
    nonisolated(unsafe) private static var directoryFD: Int32 = -1
    nonisolated(unsafe) private static let nameBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: 512)
    nonisolated(unsafe) private static var exitStatus: Int32 = 1

    // SIGBUS: a mapped file that shrank while it was read (FileDescriptorIO.swift's MappedFile).
    private static let signals = [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGBUS]

    /// Installs the handler: on any of the signals, remove the registered file and exit with `status`.
    /// SIGPIPE is ignored, so that a closed pipe is an error to report rather than a death.
    public static func install(exitStatus status: Int32) {
        exitStatus = status
        signal(SIGPIPE, SIG_IGN)
        for number in signals {
            signal(number) { _ in
                if Interruption.directoryFD >= 0 {
                    _ = unlinkat(Interruption.directoryFD, Interruption.nameBuffer, 0)
                }
                _exit(Interruption.exitStatus)
            }
        }
    }

    /// Registers the temporary entry `name` of the directory open as `directoryFD`.
    static func register(directoryFD fd: Int32, name: String) {
        withSignalsBlocked {
            let bytes = Array(name.utf8.prefix(511))
            for (index, byte) in bytes.enumerated() { nameBuffer[index] = CChar(bitPattern: byte) }
            nameBuffer[bytes.count] = 0
            directoryFD = fd
        }
    }

    /// Forgets the registered entry (it was published or removed).
    static func unregister() {
        withSignalsBlocked { directoryFD = -1 }
    }

    /// Runs `body` with the handled signals blocked: one that arrives meanwhile is handled right after,
    /// so the handler never sees a half-made state (a file created but not yet registered).
    static func withSignalsBlocked<T>(_ body: () -> T) -> T {
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        for number in signals { sigaddset(&blocked, number) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        return body()
    }
}
