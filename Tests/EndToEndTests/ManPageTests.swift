// The man pages: each lints clean with mandoc, every option that a tool's --help lists is documented
// in its page, every exit status that --help lists is in the page's EXIT STATUS section and nothing
// else is, every environment variable read by name in the modules a tool is built from (its folder
// and, through their imports, every module of Sources/ it uses) is in ENVIRONMENT, and the sections
// and configuration lines that a DBA looks for are there.

import Foundation
import Testing
import TestSupport

@Suite struct ManPageTests {
    static let tools = ["walferry-archive", "walferry-backup", "walferry-check", "walferry-cleanup", "walferry-restore", "walferry-recover"]

    /// The sections every page has, in mdoc's conventional order (mandoc warns about another order).
    static let requiredSections = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS",
                                   "EXAMPLES", "SEE ALSO"]

    static func page(_ tool: String) throws -> String {
        try String(contentsOfFile: packageRoot + "/man/\(tool).1", encoding: .utf8)
    }

    /// The source lines of section `name` (between its `.Sh` and the next), or nil when it is missing.
    static func section(_ name: String, of page: String) -> String? {
        let lines = page.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(of: Substring(".Sh \(name)")) else { return nil }
        let body = lines[(start + 1)...].prefix { !$0.hasPrefix(".Sh ") }
        return body.joined(separator: "\n")
    }

    static var mandocInstalled: Bool {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mandoc") else {
            Issue.record("mandoc is not installed (apt-get install -y mandoc); scripts/test and .ci/run install it")
            return false
        }
        return true
    }

    @Test(arguments: tools)
    func lintsClean(_ tool: String) throws {
        guard Self.mandocInstalled else { return }
        let outcome = try runProcess("/usr/bin/mandoc", ["-Tlint", "-Wwarning", packageRoot + "/man/\(tool).1"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stdout + outcome.stderr == "")
    }

    /// Style too (lines of at most 80 bytes, ...), except what depends on the manuals installed on
    /// this machine: the other walferry pages are found once the package is installed.
    @Test(arguments: tools)
    func lintsCleanAtStyleLevel(_ tool: String) throws {
        guard Self.mandocInstalled else { return }
        let outcome = try runProcess("/usr/bin/mandoc", ["-Tlint", "-Wstyle", packageRoot + "/man/\(tool).1"])
        let messages = (outcome.stdout + outcome.stderr).split(separator: "\n")
            .filter { !$0.contains("referenced manual not found") && !$0.contains("mandoc.db") }
        #expect(messages.isEmpty, "\(messages.joined(separator: "\n"))")
    }

    @Test(arguments: tools)
    func documentsEveryOptionOfHelp(_ tool: String) throws {
        let help = try runTool(tool, ["--help"])
        #expect(help.status == 0)
        let optionsSection = help.stdout.components(separatedBy: "\nOPTIONS:\n").last ?? ""
        // Option lines start with two spaces and a dash, and the help text follows two spaces or more:
        // "  -o, --output <OUTPUT>   A directory of backups, a tarball to create, or - for".
        let names = optionsSection.split(separator: "\n")
            .filter { $0.hasPrefix("  -") }
            .map { $0.dropFirst(2).components(separatedBy: "  ")[0] }
            .flatMap { column in column.split(separator: " ").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: ",")) } }
            .filter { $0.hasPrefix("-") }
        #expect(names.count >= 5, "no options found in --help: \(help.stdout)")
        let options = try #require(Self.section("OPTIONS", of: try Self.page(tool)), "man/\(tool).1 has no OPTIONS section")
        // Each option has an entry of its own: an ".It" line of the list. mdoc writes -x as "Fl x" and
        // --strip-extension as "Fl -strip-extension": ".It Fl x Ar EXT , Fl -strip-extension Ns = Ns Ar EXT".
        var documented: Set<String> = []
        for line in options.split(separator: "\n") where line.hasPrefix(".It ") {
            let words = line.split(separator: " ")
            for (word, next) in zip(words, words.dropFirst()) where word == "Fl" { documented.insert("-" + next) }
        }
        for name in names {
            #expect(documented.contains(name), "\(name) is in --help but has no entry in the OPTIONS of man/\(tool).1")
        }
    }

    /// --help's "Exit status: 0 ..., 1 ..., 2 ..." paragraph and the page's EXIT STATUS list (".It 0")
    /// name the same statuses.
    @Test(arguments: tools)
    func documentsTheExitStatusesOfHelp(_ tool: String) throws {
        let help = try runTool(tool, ["--help"])
        #expect(help.status == 0)
        let paragraph = try #require(help.stdout.components(separatedBy: "\n\n").first { $0.hasPrefix("Exit status:") },
                                     "no exit statuses in --help: \(help.stdout)")
        let inHelp = Set(paragraph.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," })
            .compactMap { Int($0) })
        #expect(inHelp.contains(0) && inHelp.count >= 3, "\(paragraph)")
        let exitStatus = try #require(Self.section("EXIT STATUS", of: try Self.page(tool)), "man/\(tool).1 has no EXIT STATUS section")
        let inPage = Set(exitStatus.split(separator: "\n").filter { $0.hasPrefix(".It ") }.compactMap { Int($0.dropFirst(4)) })
        #expect(inPage == inHelp, "man/\(tool).1 lists the exit statuses \(inPage.sorted()), --help \(inHelp.sorted())")
    }

    /// The folders of Sources/ that `tool`'s code lives in: its own, then every module its sources
    /// import that has a folder in Sources/, and theirs in turn. Found from the import lines, so that a
    /// module added, renamed or newly imported is scanned without this list being edited; a system
    /// module (Glibc, ArgumentParser) has no folder there and is not followed.
    static func sourceModules(of tool: String) throws -> [String] {
        let importLine = try NSRegularExpression(
            pattern: #"^\s*(?:@\w+\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?([A-Za-z_][A-Za-z0-9_]*)"#,
            options: .anchorsMatchLines)
        var found: [String] = [], pending = [tool]
        while let module = pending.popLast() {
            guard !found.contains(module) else { continue }
            found.append(module)
            for text in try sourceTexts(of: module) {
                for match in importLine.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let name = (text as NSString).substring(with: match.range(at: 1))
                    var isDirectory: ObjCBool = false
                    if FileManager.default.fileExists(atPath: packageRoot + "/Sources/" + name, isDirectory: &isDirectory),
                       isDirectory.boolValue { pending.append(name) }
                }
            }
        }
        return found.sorted()
    }

    /// The text of every Swift and C source file in Sources/`module`, sub-folders included.
    static func sourceTexts(of module: String) throws -> [String] {
        let root = packageRoot + "/Sources/" + module
        let files = try #require(FileManager.default.enumerator(atPath: root), "no folder \(root)").compactMap { $0 as? String }
        return try files.filter { $0.hasSuffix(".swift") || $0.hasSuffix(".c") || $0.hasSuffix(".h") }.sorted()
            .map { try String(contentsOfFile: root + "/" + $0, encoding: .utf8) }
    }

    /// Every `getenv("NAME")` or `environment("NAME")` in the sources of every module the tool's code
    /// lives in (sourceModules) is in the page's ENVIRONMENT section.
    @Test(arguments: tools)
    func documentsEveryEnvironmentVariableTheSourcesRead(_ tool: String) throws {
        let modules = try Self.sourceModules(of: tool)
        // Not the tool's folder alone: its imports were followed.
        #expect(modules.count >= 3, "\(tool)'s sources import no module of Sources/: \(modules)")
        var read: Set<String> = []
        let pattern = try NSRegularExpression(pattern: #"(?:getenv|environment)\("([A-Z][A-Z0-9_]*)"\)"#)
        for module in modules {
            for text in try Self.sourceTexts(of: module) {
                for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    read.insert((text as NSString).substring(with: match.range(at: 1)))
                }
            }
        }
        if tool == "walferry-backup" { #expect(read.contains("PGDATA"), "the scan found nothing: \(read)") }
        let environment = try #require(Self.section("ENVIRONMENT", of: try Self.page(tool)), "man/\(tool).1 has no ENVIRONMENT section")
        for name in read.sorted() {
            // "Ev PGDATA" names PGDATA, "Ev PGDATABASE" does not.
            let named = environment.range(of: "Ev \(name)(?![A-Z0-9_])", options: .regularExpression) != nil
            #expect(named, "the sources of \(tool) (\(modules.joined(separator: ", "))) read \(name), which ENVIRONMENT of man/\(tool).1 does not name")
        }
    }

    @Test(arguments: tools)
    func hasTheRequiredSections(_ tool: String) throws {
        let page = try Self.page(tool)
        for name in Self.requiredSections {
            let body = Self.section(name, of: page)
            #expect(body != nil, "man/\(tool).1 has no \(name) section")
            #expect(body.map { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty } ?? true, "man/\(tool).1's \(name) is empty")
        }
    }

    /// The lines to paste, in the page's EXAMPLES: postgresql.conf for a primary, a standby and a
    /// point-in-time recovery (PostgreSQL 12+ signal files), the crontab line of a backup with
    /// retention; and the files each page must explain.
    @Test(arguments: tools)
    func examplesHaveTheLinesToPasteAndFilesTheNamesToKnow(_ tool: String) throws {
        let page = try Self.page(tool)
        let examples = try #require(Self.section("EXAMPLES", of: page), "man/\(tool).1 has no EXAMPLES section")
        let files = try #require(Self.section("FILES", of: page), "man/\(tool).1 has no FILES section")
        let wanted: [String: (examples: [String], files: [String])] = [
            "walferry-archive": (["archive_mode = on", "archive_command = 'walferry-archive %p /mnt/archive/%f"],
                                 ["walferry.identity", "walferry.archives", ".walferry-tmp"]),
            "walferry-restore": (["standby.signal", "restore_command = 'walferry-restore --standby /mnt/archive/%f %p'",
                                  "recovery.signal", "restore_command = 'walferry-restore --pitr /mnt/archive/%f %p'"],
                                 ["walferry.identity", ".walferry-tmp", "walferry.spool", "walferry.spool.lock",
                                  "walferry-prefetch.log", "standby.signal", "recovery.signal"]),
            "walferry-cleanup": (["standby.signal", "archive_cleanup_command = 'walferry-cleanup /mnt/archive %r'",
                                  "archive_cleanup_command = 'walferry-cleanup -x .bz2 /mnt/archive %r'"],
                                 ["walferry.identity", ".walferry-tmp"]),
            "walferry-backup": (["15 2 * * * walferry-backup -D /var/lib/postgresql/15/main -o /mnt/backups --wal-archive /mnt/archive --keep 7",
                                 "tar -xjf", "recovery.signal", "restore_command = 'walferry-restore --pitr /mnt/archive/%f %p'"],
                                [".walferry-backup.lock", ".walferry-backup-partial-", "base.tar.bz2", "backup_manifest"]),
            "walferry-recover": (["--standby --wal-archive /mnt/archive", "restore_command = 'walferry-restore --standby /mnt/archive/%f %p'",
                                  "recovery.signal", "restore_command = 'walferry-restore --pitr /mnt/archive/%f %p'"],
                                 [".walferry-recover-partial", "walferry-recover-old-", "postgresql.auto.conf", "standby.signal"]),
            "walferry-check": (["command_line walferry-check --format nagios", "chronic walferry-check -A /mnt/archive -B /mnt/backups --deep",
                                "--textfile $T", "walferry_check_status"],
                               ["walferry.identity", "backup_manifest", ".walferry-tmp"]),
        ]
        let expected = try #require(wanted[tool])
        for line in expected.examples {
            #expect(examples.contains(line), "the EXAMPLES of man/\(tool).1 lack \(line)")
        }
        for name in expected.files {
            #expect(files.contains(name), "the FILES of man/\(tool).1 do not explain \(name)")
        }
    }
}
