// Signals taken by a thread of their own: the signals are blocked in every thread, and one thread
// waits for them with sigtimedwait and acts in ordinary code.
//
// Like a signal handler, except that:
// - nothing runs in signal context, so the action may lock, print and call anything;
// - the action runs even while every other thread is stuck in the kernel: a read from a stalled NFS
//   server or a hung FUSE file system waits out any signal that has a handler (the handler would run
//   on that thread, after the read), but a process whose signal thread ends it with _exit or by a
//   fatal signal is torn down at once, reads and all.
// The signals must be blocked before any other thread starts, so that every thread inherits the
// mask: `start` blocks them in the calling thread first.

import Glibc

/// A thread that waits for `signals` and calls an action for each one, until stopped.
final class SignalThread: @unchecked Sendable {
    // @unchecked: `stopping` is read and written only with `lock` held; `thread` only by the owner.
    private let lock = ConditionLock()
    private var stopping = false
    private var thread: JoinableThread?

    /// Blocks `signals` in the calling thread (and so in every thread it starts later), then starts the
    /// thread that waits for them and calls `action` with each one's number.
    init(signals: [Int32], action: @escaping @Sendable (Int32) -> Void) throws(Errno) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let watched = set
        thread = try JoinableThread.start { [self] in
            var set = watched
            var timeout = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            while !lock.withLock({ stopping }) {
                let number = sigtimedwait(&set, nil, &timeout)
                if number > 0 { action(number) }
            }
        }
    }

    /// Stops the thread (within 0.2 s) and waits for it. The signals stay blocked.
    func stop() {
        lock.withLock { stopping = true }
        thread?.join()
        thread = nil
    }
}

/// A signal's name, for messages: "SIGTERM".
func signalName(_ number: Int32) -> String {
    switch number {
    case SIGINT: "SIGINT"
    case SIGTERM: "SIGTERM"
    case SIGHUP: "SIGHUP"
    case SIGQUIT: "SIGQUIT"
    default: "signal \(number)"
    }
}
