// Which entries of a data directory (or tablespace) a base backup leaves out.
//
// Equivalent to the lists and tests of PostgreSQL 15-17's server-side base backup (basebackup.c:
// excludeDirContents, excludeFiles, the pgsql_tmp prefix, the unlogged and temporary relation rules),
// which pg_basebackup applies on every supported version, so walferry-backup uses them for 9.6-14
// too: leaving out more of what the server rebuilds at start-up is safe on every version. Differences:
// the stats_temp_directory of 9.6-14, when moved from its default pg_stat_tmp, is not looked up, and
// the unlogged-relation test looks for the init fork in the directory listing taken just before,
// where the server stats the file.

/// The server's rules, as pure functions of entry names.
public enum BackupExclusions {
    /// Directories written as empty entries: the server empties or rebuilds them at start-up.
    public static let directoriesWithoutContents: Set<[UInt8]> = Set([
        "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans",
    ].map { Array($0.utf8) })

    /// Files never copied: temporary files, the live cluster's own backup files (which would make a
    /// restored copy believe it was something else), and the postmaster's lock and options.
    public static let excludedFiles: Set<[UInt8]> = Set([
        "postgresql.auto.conf.tmp", "current_logfiles.tmp", "backup_label", "tablespace_map", "backup_manifest",
        "postmaster.pid", "postmaster.opts",
    ].map { Array($0.utf8) })

    /// True for an entry skipped wherever it is: the files above, `pg_internal.init*` (relation cache
    /// files, rebuilt at start-up), `pgsql_tmp*` (temporary files and directories), `.DS_Store`.
    public static func skipsEverywhere(_ name: [UInt8]) -> Bool {
        if excludedFiles.contains(name) { return true }
        if name.starts(with: "pg_internal.init".utf8) { return true }
        if name.starts(with: "pgsql_tmp".utf8) { return true }
        return name.elementsEqual(".DS_Store".utf8)
    }

    /// A relation file name in a database directory: `<relfilenode>[_fsm|_vm|_init][.<segment>]`.
    public struct RelationFileName: Equatable, Sendable {
        public let relationNumber: [UInt8]
        /// "fsm", "vm", "init", or nil for the main fork.
        public let fork: String?
    }

    /// Parses a non-temporary relation file name, as the server's parse_filename_for_nontemp_relation.
    public static func relationFileName(_ name: [UInt8]) -> RelationFileName? {
        let digits = name.prefix { isDigit($0) }
        guard !digits.isEmpty, digits.count <= 10 else { return nil }
        var rest = name[digits.count...]
        var fork: String?
        if rest.first == UInt8(ascii: "_") {
            guard let matched = forkSuffix(rest.dropFirst()) else { return nil }
            fork = matched
            rest = rest.dropFirst(1 + matched.utf8.count)
        }
        guard isSegmentSuffix(rest) else { return nil }
        return RelationFileName(relationNumber: Array(digits), fork: fork)
    }

    /// A temporary relation's file: `t<backend>_<relfilenode>[_fork][.<segment>]`, as the server's
    /// looks_like_temp_rel_name.
    public static func isTemporaryRelation(_ name: [UInt8]) -> Bool {
        guard name.first == UInt8(ascii: "t") else { return false }
        var rest = name.dropFirst()
        let backend = rest.prefix { isDigit($0) }
        guard !backend.isEmpty, rest.dropFirst(backend.count).first == UInt8(ascii: "_") else { return false }
        rest = rest.dropFirst(backend.count + 1)
        let relation = rest.prefix { isDigit($0) }
        guard !relation.isEmpty, relation.count <= 10 else { return false }
        rest = rest.dropFirst(relation.count)
        if rest.first == UInt8(ascii: "_") {
            guard let fork = forkSuffix(rest.dropFirst()) else { return false }
            rest = rest.dropFirst(1 + fork.utf8.count)
        }
        return isSegmentSuffix(rest)
    }

    /// True when, in a database directory whose names are `siblings`, the relation file `name` belongs
    /// to an unlogged relation and is not its init fork: the server rebuilds it from the init fork.
    public static func isUnloggedRelationData(_ name: [UInt8], siblings: Set<[UInt8]>) -> Bool {
        guard let relation = relationFileName(name), relation.fork != "init" else { return false }
        return siblings.contains(relation.relationNumber + Array("_init".utf8))
    }

    /// True when `name` is all digits: a database directory inside `base/` or a tablespace's version
    /// directory.
    public static func isDatabaseDirectoryName(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.allSatisfy(isDigit)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// The fork name at the start of `rest`, when it is one the server knows (the main fork has no
    /// suffix).
    private static func forkSuffix(_ rest: ArraySlice<UInt8>) -> String? {
        for fork in ["fsm", "vm", "init"] where rest.starts(with: fork.utf8) { return fork }
        return nil
    }

    /// Nothing, or "." and at least one digit (a 1 GB segment number), and then the end.
    private static func isSegmentSuffix(_ rest: ArraySlice<UInt8>) -> Bool {
        if rest.isEmpty { return true }
        guard rest.first == UInt8(ascii: "."), rest.count > 1 else { return false }
        return rest.dropFirst().allSatisfy(isDigit)
    }
}
