// walferry-backup arrives with its own issue; until then it says so and exits 1.
import WalferryCore

Console(program: "walferry-backup").error("walferry-backup is not implemented yet")
#if canImport(Glibc)
import Glibc
#endif
exit(1)
