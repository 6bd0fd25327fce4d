// Plain POSIX threads: a mutex with a condition variable, starting and joining a thread, and the
// number of online CPUs.
//
// Like Foundation's NSCondition and Thread, or Dispatch's queues, but without either library: the tools
// start once per 16 MB WAL segment, and everything linked in is paid at each start: a program that
// imports Foundation, linked as the .deb links ours (-static-stdlib), is 21 MB against 9 MB without it
// (measured with Swift 6.3). pthread objects must not
// move once initialised, so each lives in memory of its own, allocated once, never in a Swift `var`.

import Glibc

/// A mutex and one condition variable tied to it, at fixed heap addresses.
///
/// The corresponding C types are `pthread_mutex_t` and `pthread_cond_t`.
final class ConditionLock: @unchecked Sendable {
    // @unchecked: the two pointers are set once and never change; what they point at is the pthread
    // objects themselves, which are made to be shared between threads.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        // Both calls can fail only with EINVAL for bad attributes (we pass none) or ENOMEM, which a
        // default mutex does not hit on Linux: glibc initialises it in place.
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deinitialize(count: 1)
        condition.deallocate()
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    @inline(__always)
    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Releases the mutex, waits for a signal, and takes the mutex back. Call only with the mutex held
    /// (inside `withLock`), in a loop that re-checks the condition: wake-ups can be spurious.
    @inline(__always)
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Wakes every waiting thread. Call with the mutex held, so no waiter can miss it.
    @inline(__always)
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// A started thread, to be joined exactly once.
struct JoinableThread: Sendable {
    fileprivate let handle: pthread_t

    /// Starts a thread that runs `body`. The corresponding C function is `pthread_create`.
    static func start(_ body: @escaping @Sendable () -> Void) throws(Errno) -> JoinableThread {
        let box = Unmanaged.passRetained(ThreadBody(body))
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { context in
            // The context is the box passed just below; it cannot be nil.
            guard let context else { return nil }
            Unmanaged<ThreadBody>.fromOpaque(context).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw Errno(result)  // pthread_create returns the error instead of setting errno
        }
        return JoinableThread(handle: handle)
    }

    /// Waits for the thread to finish. The corresponding C function is `pthread_join`.
    func join() {
        // Fails only for a thread that is not joinable or already joined: a bug, and nothing to undo.
        _ = pthread_join(handle, nil)
    }
}

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// The number of CPUs online now, at least 1: what `getconf _NPROCESSORS_ONLN` prints. The corresponding C
/// function is `sysconf`.
public var onlineCPUCount: Int {
    let count = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    return count > 0 ? count : 1
}
