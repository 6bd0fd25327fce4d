// Stopping a backup at once when it can no longer succeed: the session that started it died, or the
// process was asked to stop (SIGINT, SIGTERM, SIGHUP).
//
// Like pgBackRest's keep-alive during a backup (a query on the backup's connection at intervals) and
// pg_basebackup's handling of a lost connection (it fails at once), with two threads of plain pthreads
// (see System/Threads.swift for why not Dispatch): a heartbeat thread that watches the session, and a
// signal thread that waits with sigtimedwait. Both only trip a flag; the copying thread checks it
// between reads (every megabyte), stops, and removes its partial output. No work happens in a signal
// handler: the signals are blocked in every thread and taken synchronously by the signal thread.

import Glibc

/// Why a backup was stopped from outside the copying thread.
public enum BackupAbortReason: Sendable, Equatable {
    /// The backup's session is gone (terminated, network failure): the server has aborted the backup.
    case sessionLost(String)
    /// SIGINT, SIGTERM or SIGHUP.
    case signal(Int32)

    var failure: BackupFailure {
        switch self {
        case .sessionLost(let reason):
            BackupFailure(.sessionLost, "the backup's session ended before pg_backup_stop, so the backup is void: \(reason)",
                          hints: ["Check the server log: the session was terminated, or the connection was lost."])
        case .signal(let number):
            BackupFailure(.interrupted, "interrupted by signal \(number) (\(signalName(number))); the backup was abandoned")
        }
    }
}

/// A flag any thread may trip once; the first reason wins.
public final class BackupAbortFlag: @unchecked Sendable {
    // @unchecked: `reason` is read and written only with `lock` held.
    private let lock = ConditionLock()
    private var reason: BackupAbortReason?

    public init() {}

    public func trip(_ newReason: BackupAbortReason) {
        lock.withLock {
            if reason == nil { reason = newReason }
            lock.broadcast()
        }
    }

    /// The reason the backup must stop, or nil while it may go on.
    public var current: BackupAbortReason? { lock.withLock { reason } }

    /// Throws the abort's failure when the flag is tripped.
    func check() throws(BackupFailure) {
        if let reason = current { throw reason.failure }
    }
}

/// A thread that calls `watch` again and again (it blocks for a short while each time: polling the
/// session's socket) until stopped, and trips the flag when `watch` reports the session dead.
final class Heartbeat: @unchecked Sendable {
    // @unchecked: `stopping` is read and written only with `lock` held; `thread` only by the owner.
    private let lock = ConditionLock()
    private var stopping = false
    private var thread: JoinableThread?

    /// Starts the thread. `watch` returns nil while the session is alive, else why it is not.
    init(flag: BackupAbortFlag, watch: @escaping @Sendable () -> String?) throws(BackupFailure) {
        do {
            thread = try JoinableThread.start { [self] in
                while !lock.withLock({ stopping }) {
                    if let reason = watch() {
                        flag.trip(.sessionLost(reason))
                        return
                    }
                }
            }
        } catch {
            throw BackupFailure(.failure, "could not start the heartbeat thread: \(error)")
        }
    }

    /// Stops the thread and waits for it (at most one `watch` call).
    func stop() {
        lock.withLock { stopping = true }
        thread?.join()
        thread = nil
    }
}

/// Takes SIGINT, SIGTERM and SIGHUP away from their default action (death, leaving a partial backup)
/// and turns them into a tripped flag plus a call to `onSignal` (which cancels the running query).
final class SignalWatcher {
    private let thread: SignalThread

    /// Blocks the three signals in the calling thread (and so in every thread it starts later), then
    /// starts the watching thread. Call before starting any other thread.
    init(flag: BackupAbortFlag, onSignal: @escaping @Sendable () -> Void) throws(BackupFailure) {
        do {
            thread = try SignalThread(signals: [SIGINT, SIGTERM, SIGHUP]) { number in
                flag.trip(.signal(number))
                onSignal()
            }
        } catch {
            throw BackupFailure(.failure, "could not start the signal thread: \(error)")
        }
        // A write to a closed pipe (-o - into `| head`) must be an EPIPE error, not a silent death.
        signal(SIGPIPE, SIG_IGN)
    }

    func stop() { thread.stop() }
}
