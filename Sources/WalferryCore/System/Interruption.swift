// What happens when the server stops a tool midway: SIGTERM (fast shutdown), SIGINT, SIGQUIT
// (immediate shutdown) or SIGHUP. The tool's signal thread (SignalThread.swift) removes the one
// temporary file being written, if any, says so in one line, and ends the process the way the tool
// chose:
// - with an exit status (walferry-archive), so that the process never dies by a signal, which the
//   archiver would treat as fatal;
// - by the same signal again, with its default action (walferry-restore), because the startup
//   process reads a restore_command that died by SIGTERM as "the server is shutting down", while an
//   exit status of 1 would read as "file not in the archive" and end a targeted recovery early.
//
// Like a signal handler that cleans up and exits, except that it runs on a thread of its own: a
// handler runs on the thread the signal interrupts, and a thread stuck in a read from a stalled NFS
// server or a hung FUSE file system takes it only once the read returns, so the server's shutdown
// would wait for the store. From the signal thread, _exit and a fatal signal end the process at once,
// the stuck read included.
//
// SIGBUS stays with a handler: it is raised on the thread that touched a mapped file which shrank
// (FileDescriptorIO.swift's MappedFile), synchronously, and cannot be waited for. The handler does
// only async-signal-safe things (unlinkat, _exit, signal, sigprocmask, raise), with the name copied
// beforehand into memory that is never freed or moved.

import Glibc

public enum Interruption {
    /// The registered temporary entry: a directory descriptor (-1 when none) and a NUL-terminated name.
    /// Changed only with `mutex` held; the SIGBUS handler reads it without (it runs on the thread that
    /// changes it, in between).
    nonisolated(unsafe) private static var directoryFD: Int32 = -1
    nonisolated(unsafe) private static let nameBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: 512)
    nonisolated(unsafe) private static var exitStatus: Int32 = 1
    nonisolated(unsafe) private static var reraise = false
    nonisolated(unsafe) private static var program = "walferry"
    /// A recursive mutex: a file is created and registered under one hold of it.
    nonisolated(unsafe) private static let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        return mutex
    }()
    nonisolated(unsafe) private static var thread: SignalThread?

    /// The signals that stop a tool.
    private static let stopSignals = [SIGTERM, SIGINT, SIGQUIT, SIGHUP]

    /// How the process ends once the registered file is removed.
    public enum Ending: Sendable {
        /// `_exit(status)`: the process never dies by a signal.
        case exit(status: Int32)
        /// The signal's default action is restored and the signal raised again: the process dies by
        /// the signal it received, as if nothing had caught it.
        case reraise
    }

    /// Starts the signal thread: on SIGTERM, SIGINT, SIGQUIT or SIGHUP, remove the registered file,
    /// print `program: error: interrupted by signal N (NAME)` unless `quiet`, then end as `ending` says.
    /// SIGPIPE is ignored, so that a closed pipe is an error to report rather than a death. Call before
    /// any other thread starts.
    public static func install(_ ending: Ending, program: String, quiet: Bool = false) {
        switch ending {
        case .exit(let status): exitStatus = status; reraise = false
        case .reraise: reraise = true
        }
        self.program = quiet ? "" : program
        signal(SIGPIPE, SIG_IGN)
        signal(SIGBUS, handler)
        // A parent may have left SIGBUS blocked (a signal mask survives exec): unblock it, so that a
        // shrinking mapped file ends in a clean failure rather than a silent death.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGBUS)
        sigprocmask(SIG_UNBLOCK, &unblock, nil)
        do {
            // Blocked here, the stop signals are taken by the thread; one already pending (blocked by
            // a parent before exec) is taken at once.
            thread = try SignalThread(signals: stopSignals) { number in stop(number) }
        } catch {
            // No thread to be had (a process limit): a handler does the same, later on a stuck read.
            for number in stopSignals { signal(number, handler) }
            var unblock = sigset_t()
            sigemptyset(&unblock)
            for number in stopSignals { sigaddset(&unblock, number) }
            sigprocmask(SIG_UNBLOCK, &unblock, nil)
        }
    }

    /// The signal thread's action: remove the registered file, say so, end. The removal waits at most
    /// a quarter of a second for the registration (a create stuck on a hung file system holds it) and
    /// another quarter for the unlink itself (on a stalled server it waits as the stuck read does): a
    /// file left then is removed by the next run, since its lock goes with this process.
    private static func stop(_ number: Int32) -> Never {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_nsec += 250_000_000
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        if pthread_mutex_timedlock(mutex, &deadline) == 0 {
            if directoryFD >= 0 { removeRegisteredEntry(waitingAtMost: 250) }
            directoryFD = -1
        }
        if !program.isEmpty { Console(program: program).error("interrupted by signal \(number) (\(signalName(number)))") }
        end(number)
    }

    /// Unlinks the registered entry on a thread of its own, waiting for it at most `milliseconds`.
    private static func removeRegisteredEntry(waitingAtMost milliseconds: Int32) {
        var done: [Int32] = [-1, -1]
        guard pipe(&done) == 0 else {
            _ = unlinkat(directoryFD, nameBuffer, 0)
            return
        }
        let (directory, signalDone) = (directoryFD, done[1])
        guard (try? JoinableThread.start({
            _ = unlinkat(directory, Interruption.nameBuffer, 0)
            var byte: UInt8 = 1
            _ = write(signalDone, &byte, 1)
        })) != nil else {
            _ = unlinkat(directoryFD, nameBuffer, 0)
            return
        }
        var waiting = pollfd(fd: done[0], events: Int16(POLLIN), revents: 0)
        _ = poll(&waiting, 1, milliseconds)
    }

    /// Ends the process as installed: by `signal` again, or with the exit status.
    private static func end(_ received: Int32) -> Never {
        if reraise {
            // Blocked in this thread (or, in a handler, while it runs): unblock it after restoring the
            // default action, so that raise() ends the process right here.
            signal(received, SIG_DFL)
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, received)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            raise(received)
            _exit(128 + received)  // not reached; what a shell reports for a death by the signal
        }
        _exit(exitStatus)
    }

    /// SIGBUS, and the stop signals when no thread could be started.
    private static let handler: @convention(c) (Int32) -> Void = { received in
        if Interruption.directoryFD >= 0 { _ = unlinkat(Interruption.directoryFD, Interruption.nameBuffer, 0) }
        Interruption.end(received)
    }

    /// Registers the temporary entry `name` of the directory open as `directoryFD`.
    static func register(directoryFD fd: Int32, name: String) {
        whileRegistering {
            let bytes = Array(name.utf8.prefix(511))
            for (index, byte) in bytes.enumerated() { nameBuffer[index] = CChar(bitPattern: byte) }
            nameBuffer[bytes.count] = 0
            directoryFD = fd
        }
    }

    /// Forgets the registered entry (it was published or removed).
    static func unregister() {
        whileRegistering { directoryFD = -1 }
    }

    /// Runs `body` with the registration held: a stop that comes meanwhile waits for it, so it never
    /// sees a half-made state (a file created but not yet registered). SIGBUS is blocked too.
    static func whileRegistering<T>(_ body: () -> T) -> T {
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGBUS)
        for number in stopSignals { sigaddset(&blocked, number) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        pthread_mutex_lock(mutex)
        defer {
            pthread_mutex_unlock(mutex)
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        }
        return body()
    }
}
