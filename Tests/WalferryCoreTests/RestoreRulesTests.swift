// Table tests of walferry-restore's pure rules: the exit status in each mode, recovery.conf's
// standby_mode, the timeline history syntax the server accepts, and the spool's entry names.

import Testing
@testable import WalferryCore

struct RestoreRulesTests {
    @Test func failuresAreStatus1OnAStandbyOnly() {
        for status in [RestoreExitStatus.usage, .failure, .invalid, .identity] {
            #expect(status.inMode(.standby) == .notAvailable)
            #expect(status.inMode(.targeted) == status)
            #expect(status.rawValue >= 126 && status.rawValue != 143)
        }
        #expect(RestoreExitStatus.success.inMode(.standby) == .success)
        #expect(RestoreExitStatus.notAvailable.inMode(.targeted) == .notAvailable)
    }

    @Test(arguments: [
        ("standby_mode = on", true), ("standby_mode = 'on'", true), ("STANDBY_MODE='true'", true),
        ("standby_mode = yes # comment", true), ("standby_mode=1", true), ("\tstandby_mode = 'on'\r", true),
        ("standby_mode = off", false), ("standby_mode = 'off'", false), ("# standby_mode = on", false),
        ("restore_command = 'cp %f %p'", false), ("", false),
        ("standby_mode = on\nstandby_mode = off", false), ("standby_mode = off\nstandby_mode = on", true),
    ])
    func recoveryConfStandbyMode(_ text: String, _ standby: Bool) {
        #expect(RecoveryModeDecision.parseStandbyMode(text) == standby)
    }

    @Test(arguments: [
        ("1\t0/130000C8\tno recovery target specified\n", 2, nil),
        ("1\t0/130000C8\n2\tFFFFFFFF/FFFFFFFF\treason\n", 3, nil),
        ("  \n# comment\n1\t0/1\n", 2, nil),
        ("1\t0/130000C8\n", 1, "timeline IDs must be less than the file's own timeline 1"),
        ("1\t0/130000C8", 2, "file does not end with a newline (truncated?)"),
        ("1 0/130000C8\n", 2, "line 1: expected a numeric timeline ID"),
        ("1\t0/1300000C8\n", 2, "line 1: expected a write-ahead log switchpoint location"),
        ("1\t0-130000C8\n", 2, "line 1: expected a write-ahead log switchpoint location"),
        ("2\t0/1\n1\t0/2\n", 3, "line 2: timeline IDs must be in increasing sequence"),
    ] as [(String, UInt32, String?)])
    func timelineHistorySyntax(_ text: String, _ timeline: UInt32, _ problem: String?) {
        #expect(timelineHistoryProblem(Array(text.utf8), timeline: timeline) == problem)
    }

    @Test func spoolEntryNames() throws {
        let segment = try #require(WALFileName("00000002000000A1000000FF"))
        let name = PrefetchSpool.entryName(segment, checksum: 0x0012_ABCD)
        #expect(name == "00000002000000A1000000FF.0012ABCD")
        let parsed = try #require(PrefetchSpool.parseEntry(name.utf8))
        #expect(parsed.segment == segment && parsed.checksum == 0x0012_ABCD)
        for other in ["00000002000000A1000000FF", "00000002000000A1000000FF.0012abcd", "00000002000000A1000000FF.partial",
                      ".00000002000000A1000000FF.walferry-tmp", "00000002.history.0012ABCD", "walferry.spool"] {
            #expect(PrefetchSpool.parseEntry(other.utf8) == nil, "\(other)")
        }
        #expect(claimingProcess(".00000002000000A1000000FF.claimed-4242") == 4242)
        #expect(claimingProcess(".00000002000000A1000000FF.walferry-tmp") == nil)
    }
}
