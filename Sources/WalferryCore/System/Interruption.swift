// What happens when the server stops a tool midway: SIGTERM (fast shutdown), SIGINT, SIGQUIT
// (immediate shutdown) or SIGHUP. The handler removes the one temporary file being written, if any,
// and then ends the process the way the tool chose:
// - with an exit status (walferry-archive), so that the process never dies by a signal, which the
//   archiver would treat as fatal;
// - by the same signal again, with its default action (walferry-restore), because the startup
//   process reads a restore_command that died by SIGTERM as "the server is shutting down", while an
//   exit status of 1 would read as "file not in the archive" and end a targeted recovery early.
//
// Like a signal handler that sets a flag, except that it acts at once: everything it does (unlinkat,
// _exit, signal, sigprocmask, raise) is async-signal-safe, and the name it removes was copied
// beforehand into memory that is never freed or moved.

import Glibc

public enum Interruption {
    /// The registered temporary entry: a directory descriptor (-1 when none) and a NUL-terminated name.
    /// Written only outside the handler, read only by it; signals are blocked while it changes.
    nonisolated(unsafe) private static var directoryFD: Int32 = -1
    nonisolated(unsafe) private static let nameBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: 512)
    nonisolated(unsafe) private static var exitStatus: Int32 = 1
    nonisolated(unsafe) private static var reraise = false

    // SIGBUS: a mapped file that shrank while it was read (FileDescriptorIO.swift's MappedFile).
    private static let signals = [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGBUS]

    /// How the process ends once the handler has removed the registered file.
    public enum Ending: Sendable {
        /// `_exit(status)`: the process never dies by a signal.
        case exit(status: Int32)
        /// The signal's default action is restored and the signal raised again: the process dies by
        /// the signal it received, as if no handler had been installed.
        case reraise
    }

    /// Installs the handler: on any of the signals, remove the registered file and exit with `status`.
    /// SIGPIPE is ignored, so that a closed pipe is an error to report rather than a death.
    public static func install(exitStatus status: Int32) {
        install(.exit(status: status))
    }

    /// Installs the handler: on any of the signals, remove the registered file, then end as `ending`
    /// says. SIGPIPE is ignored, so that a closed pipe is an error to report rather than a death.
    public static func install(_ ending: Ending) {
        switch ending {
        case .exit(let status): exitStatus = status; reraise = false
        case .reraise: reraise = true
        }
        signal(SIGPIPE, SIG_IGN)
        for number in signals {
            signal(number) { received in
                if Interruption.directoryFD >= 0 {
                    _ = unlinkat(Interruption.directoryFD, Interruption.nameBuffer, 0)
                }
                if Interruption.reraise {
                    // The signal is blocked while its handler runs: unblock it after restoring the
                    // default action, so that raise() kills the process right here.
                    signal(received, SIG_DFL)
                    var unblock = sigset_t()
                    sigemptyset(&unblock)
                    sigaddset(&unblock, received)
                    sigprocmask(SIG_UNBLOCK, &unblock, nil)
                    raise(received)
                    _exit(128 + received)  // not reached; what a shell reports for a death by the signal
                }
                _exit(Interruption.exitStatus)
            }
        }
        // A parent may have left these signals blocked (a signal mask survives exec): the handler would
        // then never run, and a shutdown would wait for the whole copy. Unblocked only now, with the
        // handler in place, so that one already pending is handled, not fatal.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for number in signals { sigaddset(&unblock, number) }
        sigprocmask(SIG_UNBLOCK, &unblock, nil)
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
