// The benchmark driver for WalferryCore's bzip2 engine: standard input to standard output, like
// `bzip2 -c` and `bzip2 -dc`, so that bench/bzip2.sh can time it next to bzip2 and lbzip2 with the
// same redirections. Not installed; not a user-facing tool.
//
//   walferry-bzip2-bench [-d] [-1 … -9] [-n JOBS]

import WalferryCore

import Glibc

let console = Console(program: "walferry-bzip2-bench")
var decompressing = false
var level = 9
var jobs = BZip2.defaultJobs
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "-d": decompressing = true
    case "-n":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), value >= 1 else {
            console.error("option -n needs a number of jobs of at least 1")
            exit(2)
        }
        jobs = value
    default:
        // -1 … -9, as bzip2 spells the level.
        guard argument.count == 2, argument.hasPrefix("-"), let value = Int(argument.dropFirst()), (1...9).contains(value) else {
            console.error("unknown argument \"\(argument)\"")
            console.hint("usage: walferry-bzip2-bench [-d] [-1 … -9] [-n JOBS] < input > output")
            exit(2)
        }
        level = value
    }
}

do {
    if decompressing {
        try BZip2.decompress(from: 0, to: 1, jobs: jobs)
    } else {
        try BZip2.compress(from: 0, to: 1, level: level, jobs: jobs)
    }
} catch {
    console.error(decompressing ? "could not decompress: \(error)" : "could not compress: \(error)")
    exit(1)
}
