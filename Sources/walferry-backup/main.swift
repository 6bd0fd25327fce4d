// walferry-backup arrives with its own issue; until then it says so and exits 1.
import WalferryCore
import WalferryPostgres

#if canImport(Glibc)
import Glibc
#endif

Console(program: "walferry-backup").error("walferry-backup is not implemented yet (libpq \(libpqVersion()))")
exit(1)
