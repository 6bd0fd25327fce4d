// One libpq connection (PGconn) and its query results (PGresult), owned by Swift objects.
//
// Like pgBackRest's src/postgres/client.c: the conninfo is given as keyword/value pairs (walferry's
// defaults first, then the user's -d, which libpq expands and lets override them), PQfinish runs on
// every path, failed connections included, each PGresult is PQclear'd by its owner's deinit, errors
// carry the server's trimmed message, and results are checked for shape before use. It differs in
// that a session can be watched from a second thread (the backup's heartbeat): every libpq call on
// the PGconn is made with the connection's mutex held, except PQcancel, which libpq makes safe to
// call from any thread through its own PGcancel object.
//
// Developed using the libpq documentation, "Database Connection Control Functions", "Command
// Execution Functions" and "Notice Processing": https://www.postgresql.org/docs/current/libpq.html

import CLibPQ
import Synchronization

import Glibc

/// A failed connection or query, with the server's (or libpq's) message, trimmed.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The primary message ("permission denied for function pg_backup_start").
    public let message: String
    /// Further lines of a libpq message, the server's DETAIL and HINT.
    public let details: [String]
    /// The SQLSTATE, when the server sent one ("42501").
    public let sqlState: String?

    public var description: String { message }
}

/// Server notices (NOTICE, WARNING, and a FATAL that arrives while no query runs), as libpq passes
/// them to the notice processor: "WARNING:  text\n".
final class NoticeSink: @unchecked Sendable {
    // @unchecked: called by libpq only inside calls made with the connection's mutex held.
    var handler: @Sendable (String) -> Void = { _ in }
    /// The last FATAL message: why the server ended the session.
    var lastFatal: String?
}

/// An open connection. All libpq calls on it are serialised by its mutex.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked: `connection` and the heartbeat state are used only inside `mutex.withLock`; `cancelHandle`
    // is used only through PQcancel, which is thread-safe; the rest is immutable.
    private let connection: OpaquePointer
    private let cancelHandle: OpaquePointer?
    private let mutex = Mutex(())
    private let notices: NoticeSink

    /// host=… port=… dbname=… user=…, as libpq resolved them; never the password.
    public let description: String
    /// PQserverVersion: 150018 for 15.18.
    public let serverVersion: Int

    /// Connects with `defaults` (keyword, value pairs) overridden by `conninfo` (a connection string,
    /// a URI, or a database name), and by the PG* environment for what neither sets. The
    /// corresponding C function is `PQconnectdbParams`, with expand_dbname.
    public init(conninfo: String?, defaults: [(String, String)], onNotice: @escaping @Sendable (String) -> Void) throws(PostgresError) {
        var pairs = defaults
        if let conninfo { pairs.append(("dbname", conninfo)) }
        let keywords = pairs.map { strdup($0.0) } + [nil]
        let values = pairs.map { strdup($0.1) } + [nil]
        defer {
            for pointer in keywords { free(pointer) }
            for pointer in values { free(pointer) }
        }
        let made: OpaquePointer? = keywords.map { UnsafePointer($0) }.withUnsafeBufferPointer { keywordBuffer in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { valueBuffer in
                guard let keywordBase = keywordBuffer.baseAddress, let valueBase = valueBuffer.baseAddress else { return nil }
                return PQconnectdbParams(keywordBase, valueBase, 1)
            }
        }
        guard let made else {
            throw PostgresError(message: "out of memory while connecting", details: [], sqlState: nil)
        }
        // libpq allocates a PGconn even when the connection fails: it must be finished on every path.
        guard PQstatus(made) == CONNECTION_OK else {
            let error = PostgresConnection.connectionError(made)
            PQfinish(made)
            throw error
        }
        connection = made
        cancelHandle = PQgetCancel(made)
        notices = NoticeSink()
        notices.handler = onNotice
        description = PostgresConnection.describe(made)
        serverVersion = Int(PQserverVersion(made))
        // The processor gets the sink without retaining it; the sink lives as long as self, and PQfinish
        // runs in deinit before the sink is released.
        PQsetNoticeProcessor(made, { context, message in
            guard let context, let message else { return }
            let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
            let text = trimmed(String(cString: message))
            if text.hasPrefix("FATAL:") { sink.lastFatal = text }
            sink.handler(text)
        }, Unmanaged.passUnretained(notices).toOpaque())
        // Text columns fetched in binary come in the client encoding: make it the server's, so that
        // labelfile and spcmapfile arrive as the very bytes the server would write.
        if let encoding = PQparameterStatus(made, "server_encoding") {
            _ = PQsetClientEncoding(made, encoding)
        }
    }

    deinit {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        PQfinish(connection)
    }

    /// Runs one statement with text parameters; `binary` asks for every column in binary format. The
    /// corresponding C function is `PQexecParams`.
    public func execute(_ sql: String, _ parameters: [String] = [], binary: Bool = false) throws(PostgresError) -> PostgresResult {
        try mutex.withLock { _ throws(PostgresError) in
            try finishHeartbeatQuery()
            let values = parameters.map { strdup($0) }
            defer { for value in values { free(value) } }
            let result: OpaquePointer? = values.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
                PQexecParams(connection, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, binary ? 1 : 0)
            }
            guard let result else { throw connectionErrorLocked() }
            let owned = PostgresResult(result)
            let status = PQresultStatus(result)
            guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else { throw owned.error() }
            return owned
        }
    }

    // MARK: - Watching the session from the heartbeat thread

    private var heartbeatInFlight = false
    private var heartbeatSentAt = 0.0
    private var lastHeartbeat = monotonicNow()

    /// Waits up to `milliseconds` for the session to say something, and sends `SELECT 1` every
    /// `interval` seconds. Returns nil while the session is alive, else why it is gone: a closed socket
    /// (terminated backend, server shut down), an error, or no answer to the heartbeat within
    /// `answerTimeout` seconds. The corresponding C functions are `poll`, `PQconsumeInput`,
    /// `PQsendQuery` and `PQgetResult`.
    public func watch(milliseconds: Int32, interval: Double, answerTimeout: Double) -> String? {
        mutex.withLock { _ -> String? in
            if PQstatus(connection) != CONNECTION_OK { return lostReason() }
            let socket = PQsocket(connection)
            guard socket >= 0 else { return lostReason() }
            let now = monotonicNow()
            if !heartbeatInFlight && now - lastHeartbeat >= interval {
                guard PQsendQuery(connection, "SELECT 1") == 1 else { return lostReason() }
                heartbeatInFlight = true
                heartbeatSentAt = now
                lastHeartbeat = now
                _ = PQflush(connection)
            }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 {
                guard PQconsumeInput(connection) == 1 else { return lostReason() }
                while heartbeatInFlight && PQisBusy(connection) == 0 {
                    guard let result = PQgetResult(connection) else {
                        heartbeatInFlight = false
                        break
                    }
                    let status = PQresultStatus(result)
                    let message = trimmed(String(cString: PQresultErrorMessage(result)))
                    PQclear(result)
                    if status != PGRES_TUPLES_OK { return message.isEmpty ? lostReason() : message }
                }
                if !heartbeatInFlight { _ = PQisBusy(connection) }  // parses what arrived while idle
                if PQstatus(connection) != CONNECTION_OK { return lostReason() }
            }
            if heartbeatInFlight && monotonicNow() - heartbeatSentAt > answerTimeout {
                return "the server did not answer the heartbeat query within \(Int(answerTimeout)) seconds"
            }
            return nil
        }
    }

    /// False once the connection is broken (the session ended).
    public var isAlive: Bool { mutex.withLock { _ in PQstatus(connection) == CONNECTION_OK } }

    /// Asks the server to cancel the running query; safe from any thread. The corresponding C function
    /// is `PQcancel`.
    public func cancel() {
        guard let cancelHandle else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = buffer.withUnsafeMutableBufferPointer { PQcancel(cancelHandle, $0.baseAddress, Int32($0.count)) }
    }

    /// Waits for the answer to a heartbeat query still in flight, so that the next query can be sent.
    private func finishHeartbeatQuery() throws(PostgresError) {
        while heartbeatInFlight {
            guard let result = PQgetResult(connection) else {
                heartbeatInFlight = false
                break
            }
            PQclear(result)
        }
        if PQstatus(connection) != CONNECTION_OK { throw connectionErrorLocked() }
    }

    private func lostReason() -> String {
        if let fatal = notices.lastFatal { return fatal }
        let message = trimmed(String(cString: PQerrorMessage(connection)))
        return message.isEmpty ? "connection to the server lost" : firstLine(message)
    }

    private func connectionErrorLocked() -> PostgresError {
        PostgresConnection.connectionError(connection, fatal: notices.lastFatal)
    }

    static func connectionError(_ connection: OpaquePointer, fatal: String? = nil) -> PostgresError {
        let lines = trimmed(String(cString: PQerrorMessage(connection))).split(separator: "\n").map {
            String($0.drop { $0 == "\t" || $0 == " " })
        }
        var message = lines.first ?? "connection to the server lost"
        if let fatal { message = fatal }
        return PostgresError(message: message, details: Array(lines.dropFirst()), sqlState: nil)
    }

    /// host=… port=… dbname=… user=…: what libpq resolved, and nothing that could hold a password.
    static func describe(_ connection: OpaquePointer) -> String {
        func value(_ pointer: UnsafeMutablePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }
        return "host=\(value(PQhost(connection))) port=\(value(PQport(connection))) dbname=\(value(PQdb(connection))) user=\(value(PQuser(connection)))"
    }
}

/// A query's result; PQclear runs when it goes away.
public final class PostgresResult {
    private let result: OpaquePointer

    init(_ result: OpaquePointer) { self.result = result }

    deinit { PQclear(result) }

    public var rowCount: Int { Int(PQntuples(result)) }
    public var columnCount: Int { Int(PQnfields(result)) }

    /// The raw bytes of a field (text or binary, as asked), or nil for NULL or out of range.
    public func bytes(row: Int, column: Int) -> [UInt8]? {
        guard row >= 0, row < rowCount, column >= 0, column < columnCount else { return nil }
        let r = Int32(row), c = Int32(column)
        if PQgetisnull(result, r, c) == 1 { return nil }
        let length = Int(PQgetlength(result, r, c))
        guard let value = PQgetvalue(result, r, c) else { return nil }
        return value.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }

    /// A field as text (UTF-8 decoded), or nil for NULL or out of range.
    public func text(row: Int, column: Int) -> String? {
        bytes(row: row, column: column).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The error the result carries: primary message, detail, hint, SQLSTATE.
    func error() -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let primary = field(Int32(UInt8(ascii: "M"))) ?? trimmed(String(cString: PQresultErrorMessage(result)))
        var details: [String] = []
        if let detail = field(Int32(UInt8(ascii: "D"))) { details.append(detail) }
        if let hint = field(Int32(UInt8(ascii: "H"))) { details.append(hint) }
        return PostgresError(message: primary.isEmpty ? "query failed" : primary, details: details,
                             sqlState: field(Int32(UInt8(ascii: "C"))))
    }
}

/// The text without its trailing newlines and spaces (libpq ends its messages with "\n").
func trimmed(_ text: String) -> String {
    var result = Substring(text)
    while let last = result.last, last.isWhitespace { result = result.dropLast() }
    return String(result)
}

func firstLine(_ text: String) -> String { text.split(separator: "\n").first.map(String.init) ?? text }

func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
