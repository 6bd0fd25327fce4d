// Helpers for the bzip2 engine's tests: reproducible sample data, files and pipes, and the bzip2,
// lbzip2 and pbzip2 commands run as subprocesses (CI installs the bzip2, lbzip2 and pbzip2 packages).

import Foundation
import TestSupport
@testable import WalferryCore

/// A small, fast, reproducible generator (SplitMix64), so that a failing input can be made again.
typealias SampleGenerator = SplitMix64

/// WAL-like sample data: words and hex, runs of one byte (which libbz2's first stage shortens), and
/// random bytes, so that it compresses about 3 to 1 and exercises every part of the format.
func sampleData(count: Int, seed: UInt64 = 1) -> [UInt8] {
    var generator = SampleGenerator(seed: seed)
    let words = ["walferry ", "segment ", "pg_wal/", "000000010000000A000000", "\n", "archive_command ",
                 "INSERT INTO pgbench_accounts VALUES ", "checkpoint ", "restore ", "0123456789ABCDEF"]
        .map { Array($0.utf8) }
    var bytes = [UInt8]()
    bytes.reserveCapacity(count + 512)
    while bytes.count < count {
        let random = generator.next()
        switch random % 16 {
        case 0:
            // Random bytes: 8 per draw.
            for _ in 0..<(1 + Int((random >> 8) % 8)) {
                withUnsafeBytes(of: generator.next()) { bytes.append(contentsOf: $0) }
            }
        case 1:
            bytes.append(contentsOf: repeatElement(UInt8(truncatingIfNeeded: random >> 16), count: Int((random >> 24) % 300)))
        default:
            bytes.append(contentsOf: words[Int((random >> 8) % UInt64(words.count))])
        }
    }
    bytes.removeLast(bytes.count - count)
    return bytes
}

/// Reads a whole file.
func readFileBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw BZip2TestFailure("could not read \"\(path)\"") }
    return [UInt8](data)
}

/// Writes a whole file.
func writeFileBytes(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

struct BZip2TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `command` with /bin/sh and returns its exit status and standard error.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let errorPipe = Pipe()
    process.standardError = errorPipe
    try process.run()
    let stderr = errorPipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
}

/// Runs `command` and fails unless it exits 0.
func mustRun(_ command: String) throws {
    let outcome = try shell(command)
    guard outcome.status == 0 else {
        throw BZip2TestFailure("\(command) exited \(outcome.status): \(outcome.stderr)")
    }
}

/// Opens a file for reading or writing (created, truncated) and returns its descriptor.
func openFile(_ path: String, forWriting: Bool = false) throws -> Int32 {
    let fd = forWriting ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) : open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw BZip2TestFailure("could not open \"\(path)\": \(Errno.current)") }
    return fd
}

/// A pipe whose write end is fed `bytes`, `chunk` bytes per write(2), by a thread of its own; returns
/// the read end. The thread closes the write end when done; the caller ends with `closePipe`.
func pipeFeeding(_ bytes: [UInt8], chunk: Int) throws -> Int32 {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw BZip2TestFailure("pipe: \(Errno.current)") }
    let (readEnd, writeEnd) = (fds[0], fds[1])
    let thread = Thread {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let end = min(buffer.count, offset + chunk)
                if writeAll(writeEnd, UnsafeRawBufferPointer(rebasing: buffer[offset..<end])) != nil { break }
                offset = end
            }
        }
        close(writeEnd)
    }
    thread.start()
    return readEnd
}

/// Reads what is left in a pipe from `pipeFeeding`, then closes it: should the engine stop reading
/// early (a failing test), the feeding thread then finishes instead of dying of SIGPIPE with the test
/// process.
func closePipe(_ fd: Int32) {
    var sink = [UInt8](repeating: 0, count: 65_536)
    while sink.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
    close(fd)
}

/// Runs the engine's compression from file `input` to file `output`.
@discardableResult
func compressFile(_ input: String, _ output: String, level: Int = 9, jobs: Int = 2,
                  tuning: BZip2Tuning = BZip2Tuning()) throws -> (bytesIn: UInt64, bytesOut: UInt64) {
    let inputFD = try openFile(input)
    defer { close(inputFD) }
    let outputFD = try openFile(output, forWriting: true)
    defer { close(outputFD) }
    return try BZip2.compress(from: inputFD, to: outputFD, level: level, jobs: jobs, tuning: tuning)
}

/// Runs the engine's decompression from file `input` to file `output`.
@discardableResult
func decompressFile(_ input: String, _ output: String, jobs: Int = 2,
                    tuning: BZip2Tuning = BZip2Tuning()) throws -> (bytesIn: UInt64, bytesOut: UInt64) {
    let inputFD = try openFile(input)
    defer { close(inputFD) }
    let outputFD = try openFile(output, forWriting: true)
    defer { close(outputFD) }
    return try BZip2.decompress(from: inputFD, to: outputFD, jobs: jobs, tuning: tuning)
}

/// Byte offsets where a bzip2 stream starts ("BZh" + level + block or end-of-stream magic), for
/// checking how many streams a file holds. Can over-count on random data, never under-count.
func streamStarts(_ bytes: [UInt8]) -> [Int] {
    let block: [UInt8] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
    let end: [UInt8] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90]
    var starts: [Int] = []
    var index = 0
    while index + 10 <= bytes.count {
        if bytes[index] == 0x42 && bytes[index + 1] == 0x5A && bytes[index + 2] == 0x68
            && (0x31...0x39).contains(bytes[index + 3]) {
            let next = Array(bytes[index + 4..<index + 10])
            if next == block || next == end { starts.append(index) }
        }
        index += 1
    }
    return starts
}
