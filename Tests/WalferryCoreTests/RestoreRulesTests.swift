// Table tests of walferry-restore's pure rules: every exit status in each mode as the server reads it
// (PostgreSQL's rule, written here as a model), recovery.conf's standby_mode, the timeline history
// syntax the server accepts, and the spool's entry names.

import Glibc
import Testing
@testable import WalferryCore

/// What the server makes of restore_command's exit status (docs/server-rules.md §4): PostgreSQL's
/// RestoreArchivedFile() in src/backend/access/transam/xlogarchive.c, with wait_result_is_signal() and
/// wait_result_is_any_signal() from src/common/wait_error.c, for a command that exits (is not killed).
enum ServerReading: Equatable {
    /// Exit 0: the file at %p is taken.
    case restored
    /// Read as a shutdown request: the startup process exits.
    case shutdown
    /// FATAL: recovery stops.
    case fatal
    /// Not in the archive: a standby retries, a targeted recovery ends there and promotes.
    case notAvailable

    init(exitStatus: Int32) {
        let status = exitStatus & 0xFF  // all a parent sees of exit(status)
        if status == 0 {
            self = .restored
        } else if status == 128 + SIGTERM {  // wait_result_is_signal(rc, SIGTERM): a shell's report of SIGTERM
            self = .shutdown
        } else if status > 125 {  // wait_result_is_any_signal(rc, true): not executable, not found, a signal
            self = .fatal
        } else {
            self = .notAvailable
        }
    }
}

struct RestoreRulesTests {
    /// Every case of RestoreExitStatus (a case added later is checked too).
    static let allStatuses = RestoreExitStatus.allCases

    /// The server's reading of each status in each mode is the one the mode needs: a failure is
    /// retried on a standby and stops a targeted recovery, never ends it early or shuts the server
    /// down; "not found" is not available in both.
    @Test(arguments: [RecoveryMode.standby, .targeted])
    func theServerReadsEachStatusAsTheModeNeeds(_ mode: RecoveryMode) throws {
        #expect(Self.allStatuses.contains(.success) && Self.allStatuses.contains(.notAvailable) && Self.allStatuses.count > 2,
                "\(Self.allStatuses)")
        for status in Self.allStatuses {
            let exit = status.inMode(mode)
            #expect((0...255).contains(exit.rawValue), "\(status) exits \(exit.rawValue), which a parent sees as \(exit.rawValue & 0xFF)")
            let wanted: ServerReading = switch status {
            case .success: .restored
            case .notAvailable: .notAvailable
            default: mode == .standby ? .notAvailable : .fatal
            }
            #expect(ServerReading(exitStatus: exit.rawValue) == wanted, "\(status) in \(mode) exits \(exit.rawValue)")
        }
    }

    /// The model above against the boundaries docs/server-rules.md §4 gives.
    @Test(arguments: [
        (0, ServerReading.restored), (1, .notAvailable), (125, .notAvailable), (126, .fatal), (127, .fatal),
        (142, .fatal), (143, .shutdown), (144, .fatal), (255, .fatal), (256, .restored),
    ] as [(Int32, ServerReading)])
    func theServersReadingOfAnExitStatus(_ status: Int32, _ reading: ServerReading) {
        #expect(ServerReading(exitStatus: status) == reading)
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
