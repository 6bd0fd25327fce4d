// A fixed set of worker threads that run jobs in any order and hand the results back in the order the
// jobs were submitted.
//
// Like a serial consumer reading from a concurrent DispatchQueue through an array of futures, but with
// plain threads (see Threads.swift for why) and a fixed number of result slots: the submitter must take
// a result before it may submit beyond `capacity` jobs, so the memory held by jobs and results is
// bounded whatever the size of the input.

/// Runs jobs on `threads` threads; results come back in submission order. One thread (the owner)
/// submits and takes results; `shutDown()` must be called before the pool is dropped.
final class OrderedWorkerPool<Job: Sendable, Output: Sendable>: @unchecked Sendable {
    // @unchecked: every mutable property below is read and written only with `lock` held (workers and
    // owner alike), except `threads`, `submitted` and `delivered`, which only the owner thread touches.
    private let lock = ConditionLock()
    // Both rings have `capacity` entries, indexed by job number modulo capacity: a job number's entry is
    // free again once its result has been taken, which `submit`'s precondition guarantees.
    private var jobs: [Job?]
    private var queued = 0  // jobs[taken % capacity ..< queued % capacity] wait for a thread
    private var taken = 0
    private var slots: [Output?]
    private var stopping = false

    private var threads: [JoinableThread] = []
    private var submitted = 0
    private var delivered = 0

    /// The most jobs that may be submitted and not yet taken back with `next()`.
    let capacity: Int

    /// Jobs submitted whose results have not been taken yet.
    var inFlight: Int { submitted - delivered }

    /// Starts `threads` threads. Each one calls `makeContext` once, then `work(context, job)` for every
    /// job it takes: the context (buffers, an encoder or a decoder) belongs to that thread alone.
    init<Context>(threads threadCount: Int, capacity: Int, makeContext: @escaping @Sendable () -> Context,
                  work: @escaping @Sendable (Context, Job) -> Output) throws(Errno) {
        self.capacity = max(1, capacity)
        slots = Array(repeating: nil, count: self.capacity)
        jobs = Array(repeating: nil, count: self.capacity)
        for _ in 0..<max(1, threadCount) {
            do {
                threads.append(try JoinableThread.start { [self] in
                    let context = makeContext()
                    while let (number, job) = take() {
                        let output = work(context, job)
                        lock.withLock {
                            slots[number % self.capacity] = output
                            lock.broadcast()
                        }
                    }
                })
            } catch {
                shutDown()
                throw error
            }
        }
    }

    /// Queues a job. The caller must first make room with `next()` when `inFlight == capacity`.
    func submit(_ job: Job) {
        precondition(inFlight < capacity, "OrderedWorkerPool.submit beyond its capacity")
        let number = submitted
        submitted += 1
        lock.withLock {
            jobs[number % capacity] = job
            queued = number + 1
            lock.broadcast()
        }
    }

    /// Waits for the oldest job not taken yet and returns its result, or nil when nothing is in flight.
    func next() -> Output? {
        guard inFlight > 0 else { return nil }
        let slot = delivered % capacity
        delivered += 1
        return lock.withLock {
            while slots[slot] == nil { lock.wait() }
            defer { slots[slot] = nil }
            return slots[slot]
        }
    }

    /// Drops the jobs no thread has started, lets the running ones finish, and joins every thread.
    func shutDown() {
        lock.withLock {
            stopping = true
            for index in jobs.indices { jobs[index] = nil }
            lock.broadcast()
        }
        for thread in threads { thread.join() }
        threads.removeAll()
    }

    /// The next job for a worker, or nil when the pool is shutting down.
    private func take() -> (Int, Job)? {
        lock.withLock {
            while taken == queued && !stopping { lock.wait() }
            if stopping { return nil }
            let number = taken
            taken += 1
            // Taken out of the ring so that the job's memory goes with the thread, not with the pool.
            guard let job = jobs[number % capacity] else { return nil }
            jobs[number % capacity] = nil
            return (number, job)
        }
    }
}
