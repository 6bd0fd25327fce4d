// The man pages: each lints clean with mandoc, and every option that a tool's --help lists is
// documented in its page.

import Foundation
import Testing
import TestSupport

@Suite struct ManPageTests {
    /// The tools that have a man page so far; each later tool adds itself here.
    static let tools = ["walferry-archive", "walferry-backup", "walferry-cleanup", "walferry-restore"]

    static func page(_ tool: String) throws -> String {
        try String(contentsOfFile: packageRoot + "/man/\(tool).1", encoding: .utf8)
    }

    @Test(arguments: tools)
    func lintsClean(_ tool: String) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mandoc") else {
            Issue.record("mandoc is not installed (apt-get install -y mandoc); scripts/test and .ci/run install it")
            return
        }
        let outcome = try runProcess("/usr/bin/mandoc", ["-Tlint", "-Wwarning", packageRoot + "/man/\(tool).1"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stdout + outcome.stderr == "")
    }

    @Test(arguments: tools)
    func documentsEveryOptionOfHelp(_ tool: String) throws {
        let help = try runTool(tool, ["--help"])
        #expect(help.status == 0)
        let optionsSection = help.stdout.components(separatedBy: "\nOPTIONS:\n").last ?? ""
        // Option lines start with two spaces and a dash: "  -x, --strip-extension <EXT>".
        let names = optionsSection.split(separator: "\n")
            .filter { $0.hasPrefix("  -") }
            .flatMap { line in line.split(separator: " ").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: ",")) } }
            .filter { $0.hasPrefix("-") }
        #expect(names.count >= 5, "no options found in --help: \(help.stdout)")
        let page = try Self.page(tool)
        for name in names {
            // mdoc writes -x as "Fl x" and --strip-extension as "Fl -strip-extension".
            #expect(page.contains("Fl \(name.dropFirst())"), "\(name) is in --help but not in man/\(tool).1")
        }
    }

    @Test(arguments: tools)
    func hasTheRequiredSections(_ tool: String) throws {
        let page = try Self.page(tool)
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            #expect(page.contains(".Sh \(section)\n"), "man/\(tool).1 has no \(section) section")
        }
        let configuration = [
            "walferry-archive": "archive_command = 'walferry-archive %p /mnt/archive/%f'",
            // Not postgresql.conf for walferry-backup: the crontab line.
            "walferry-backup": "15 2 * * * walferry-backup -D /var/lib/postgresql/15/main -o /mnt/backups --wal-archive /mnt/archive --keep 7",
            "walferry-cleanup": "archive_cleanup_command = 'walferry-cleanup /mnt/archive %r'",
            "walferry-restore": "restore_command = 'walferry-restore --standby /mnt/archive/%f %p'",
        ]
        if let line = configuration[tool] { #expect(page.contains(line), "man/\(tool).1 lacks the postgresql.conf line") }
    }
}
