#!/usr/bin/env bash
# walferry-restore against the reference restore_commands, in the same run, on the same archive of
# real WAL (pgbench on a PostgreSQL 15 primary, archived by walferry-archive as %f.bz2).
#
#   bench/restore.sh [SEGMENTS] [ROUNDS]   (defaults: 200 segments; 3 rounds of per-segment timings,
#                                           REPLAY_ROUNDS=1 round of each replay)
#   BENCH_DIR=/var/tmp                     where the clusters and the archive live (default /var/tmp:
#                                           a disk, as pg_wal and an NFS archive's cache would be)
#   WALFERRY_SCRATCH=.build-restore        SwiftPM scratch path for the release build (default .build)
#   KEEP=1                                 keep the work folder (primary, archive, base backup)
#   REUSE=/var/tmp/walferry-restore-bench.X  use a kept work folder's archive instead of making one
#
# 1. Per segment, the way the startup process runs restore_command (`sh -c`, DEST removed before
#    each call, timed with $EPOCHREALTIME around the call), over up to 100 segments a round, in
#    alternating order:
#      cp ARCHIVE/%f %p                     vs walferry-restore --standby ARCHIVE/%f %p   (plain archive)
#      bunzip2 -c ARCHIVE/%f.bz2 > %p       vs walferry-restore --standby ARCHIVE/%f.bz2 %p
# 2. Replay: a standby made with pg_basebackup before the load (no streaming) replays all SEGMENTS
#    segments from the .bz2 archive; the time from pg_ctl start until pg_last_wal_replay_lsn()
#    reaches the primary's last archived LSN, with each restore_command (in a rotating order):
#      cp ARCHIVE/%f %p                     (the plain archive: the cost of replay alone)
#      bunzip2 -c ARCHIVE/%f.bz2 > %p
#      walferry-restore --standby ARCHIVE/%f.bz2 %p
#      walferry-restore --standby --prefetch 8 --spool SPOOL ARCHIVE/%f.bz2 %p
# fsync is off on both servers, so that the disk's flush speed does not hide the restore's cost.
# Prints medians and ratios (reference time / walferry time: above 1 means walferry is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

segments=${1:-200}
rounds=${2:-3}
replay_rounds=${REPLAY_ROUNDS:-1}
base=${BENCH_DIR:-/var/tmp}
scratch=${WALFERRY_SCRATCH:-.build}
pgbin=$(pg_config --bindir)

echo "building walferry-restore and walferry-archive (release, static Swift runtime)..." >&2
swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product walferry-restore >&2
swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product walferry-archive >&2
built=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)

if [[ -n ${REUSE:-} ]]; then
    work=$REUSE
    KEEP=1
else
    work=$(mktemp -d "$base/walferry-restore-bench.XXXXXX")
    chmod 755 "$work"
fi
cleanup() {
    for node in primary standby; do
        [[ -f $work/$node/postmaster.pid ]] && as_postgres "$pgbin/pg_ctl" -D "$work/$node" -m immediate stop >/dev/null 2>&1 || true
    done
    [[ ${KEEP:-} == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# The server refuses to run as root: run it (and everything it touches) as postgres then.
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$work/bin" "$work/archive" "$work/socket" "$work/spool"
cp "$built/walferry-restore" "$built/walferry-archive" "$work/bin/"
chmod 755 "$work/bin"/*
[[ $(id -u) == 0 ]] && chown -R postgres:postgres "$work"

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sql() { as_postgres "$pgbin/psql" -X -At -q -h "$work/socket" -p 55439 -U postgres -d postgres -c "$1"; }

if [[ -z ${REUSE:-} ]]; then
# --- the primary, its base backup, and SEGMENTS segments of pgbench WAL in the archive ------------
echo "making $segments segments of pgbench WAL..." >&2
as_postgres "$pgbin/initdb" -D "$work/primary" -A trust -U postgres --no-sync --no-instructions >/dev/null
cat >>"$work/primary/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$work/socket'
port = 55439
fsync = off
shared_buffers = '128MB'
max_wal_size = '4GB'
checkpoint_timeout = '30s'
archive_mode = on
archive_command = '$work/bin/walferry-archive %p $work/archive/%f.bz2'
EOF
as_postgres "$pgbin/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null
as_postgres "$pgbin/pg_basebackup" -D "$work/base" -h "$work/socket" -p 55439 -U postgres -c fast -X stream --no-sync
first=$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
as_postgres "$pgbin/pgbench" -i -s 20 -q -h "$work/socket" -p 55439 -U postgres postgres >/dev/null 2>&1
segno() { echo $((16#${1:8:8} * 256 + 16#${1:16:8})); }
while (( $(segno "$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")") - $(segno "$first") < segments )); do
    as_postgres "$pgbin/pgbench" -n -c 2 -j 2 -T 10 -h "$work/socket" -p 55439 -U postgres postgres >/dev/null 2>&1
done
target=$(sql "SELECT pg_current_wal_lsn()")
last=$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
sql "SELECT pg_switch_wal()" >/dev/null
until [[ $(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") > "$last" || \
         $(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") == "$last" ]]; do sleep 0.5; done
as_postgres "$pgbin/pg_ctl" -D "$work/primary" -m fast -w stop >/dev/null
archived=$(ls "$work/archive" | grep -c '^[0-9A-F]\{24\}\.bz2$')
echo "archived $archived segments ($(du -sh "$work/archive" | cut -f1) compressed), replay target $target" >&2

# A plain copy of the archive, for cp.
mkdir -p "$work/plain"
cp "$work/archive/walferry.identity" "$work/plain/"
for file in "$work/archive"/*.bz2; do name=${file##*/}; bunzip2 -c "$file" >"$work/plain/${name%.bz2}"; done
[[ $(id -u) == 0 ]] && chown -R postgres:postgres "$work/plain"
else
    target=$(cat "$work/target")
    archived=$(ls "$work/archive" | grep -c '^[0-9A-F]\{24\}\.bz2$')
fi
echo "$target" >"$work/target"

# --- 1. per segment -------------------------------------------------------------------------------
mkdir -p "$work/fake/pg_wal"
names=$(ls "$work/plain" | grep '^[0-9A-F]\{24\}$' | head -100)
restore=$work/bin/walferry-restore
time_one() {  # time_one COMMAND: µs for `sh -c COMMAND` in the fake data directory, DEST removed first
    rm -f "$work/fake/pg_wal/RECOVERYXLOG"
    local t0; t0=$(now_us)
    (cd "$work/fake" && sh -c "$1")
    echo $(( $(now_us) - t0 ))
}
declare -A times
for ((round = 1; round <= rounds; round++)); do
    for f in $names; do
        cmds=("cp $work/plain/$f pg_wal/RECOVERYXLOG" "$restore --standby $work/plain/$f pg_wal/RECOVERYXLOG"
              "bunzip2 -c $work/archive/$f.bz2 > pg_wal/RECOVERYXLOG" "$restore --standby $work/archive/$f.bz2 pg_wal/RECOVERYXLOG")
        keys=(cp wplain bunzip2 wbz2)
        order=(0 1 2 3); ((round % 2)) || order=(1 0 3 2)
        for i in "${order[@]}"; do times[${keys[$i]}]+="$(time_one "${cmds[$i]}") "; done
    done
    cmp -s "$work/fake/pg_wal/RECOVERYXLOG" "$work/plain/${names##*$'\n'}" || { echo "error: walferry-restore delivered different bytes" >&2; exit 1; }
done
med() { printf '%s\n' ${times[$1]} | median; }
cp_us=$(med cp) wplain_us=$(med wplain) bunzip2_us=$(med bunzip2) wbz2_us=$(med wbz2)

# --- 2. replay on a standby -----------------------------------------------------------------------
replay() {  # replay RESTORE_COMMAND: seconds until the standby has replayed up to the target
    as_postgres rm -rf "$work/standby" "$work/spool"
    as_postgres mkdir -m 700 "$work/spool"
    as_postgres cp -a "$work/base" "$work/standby"
    as_postgres touch "$work/standby/standby.signal"
    as_postgres sh -c "cat >>'$work/standby/postgresql.conf'" <<EOF
archive_mode = off
restore_command = '$1'
wal_retrieve_retry_interval = '100ms'
EOF
    sync
    local t0; t0=$(now_us)
    as_postgres "$pgbin/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w -t 600 start >/dev/null
    until [[ $(sql "SELECT pg_last_wal_replay_lsn() >= '$target'") == t ]]; do sleep 0.05; done
    local t1; t1=$(now_us)
    as_postgres "$pgbin/pg_ctl" -D "$work/standby" -m immediate -w stop >/dev/null
    if grep -q 'walferry-restore: error' "$work/standby.log"; then
        echo "error: walferry-restore failed during replay:" >&2; grep 'walferry-restore' "$work/standby.log" >&2; exit 1
    fi
    echo $(( t1 - t0 ))
}
declare -A replays
variants=(cp bunzip2 walferry prefetch)
commands=("cp $work/plain/%f %p"
          "bunzip2 -c $work/archive/%f.bz2 > %p"
          "$restore --standby $work/archive/%f.bz2 %p"
          "$restore --standby --prefetch 8 --spool $work/spool $work/archive/%f.bz2 %p")
for ((round = 1; round <= replay_rounds; round++)); do
    for ((k = 0; k < 4; k++)); do
        i=$(( (k + round - 1) % 4 ))
        echo -n "replay round $round: ${variants[$i]}... " >&2
        elapsed=$(replay "${commands[$i]}")
        replays[${variants[$i]}]+="$elapsed "
        awk -v t="$elapsed" 'BEGIN { printf "%.1f s\n", t / 1e6 }' >&2
    done
done
rmed() { printf '%s\n' ${replays[$1]} | median; }
r_cp=$(rmed cp) r_bunzip2=$(rmed bunzip2) r_walferry=$(rmed walferry) r_prefetch=$(rmed prefetch)

fs=$(stat -f -c %T "$work")
echo
echo "walferry-restore vs cp and bunzip2 ($($pgbin/postgres --version)), $fs, $(nproc) cores, $archived segments"
printf '%-58s %12s %12s %8s\n' "per segment (median of ${rounds}x$(wc -w <<<"$names"))" "reference" "walferry" "ratio"
awk -v a="$cp_us" -v b="$wplain_us" 'BEGIN { printf "%-58s %9.2f ms %9.2f ms %7.2fx\n", "cp ARCHIVE/%f %p  vs  walferry-restore (plain)", a/1000, b/1000, b/a }'
awk -v a="$bunzip2_us" -v b="$wbz2_us" 'BEGIN { printf "%-58s %9.2f ms %9.2f ms %7.2fx\n", "bunzip2 -c ARCHIVE/%f.bz2 > %p  vs  walferry-restore (.bz2)", a/1000, b/1000, b/a }'
echo "(per segment: ratio = walferry time / reference time; goal against cp: 1.20x or less)"
echo
printf '%-58s %12s %8s\n' "replay of $archived .bz2 segments on a standby (median of $replay_rounds)" "time" "speed-up"
awk -v r="$r_cp" 'BEGIN { printf "%-58s %10.1f s\n", "(cp ARCHIVE/%f %p from the plain archive: replay alone)", r/1e6 }'
awk -v r="$r_bunzip2" 'BEGIN { printf "%-58s %10.1f s %7.2fx\n", "bunzip2 -c ARCHIVE/%f.bz2 > %p", r/1e6, 1 }'
awk -v r="$r_walferry" -v b="$r_bunzip2" 'BEGIN { printf "%-58s %10.1f s %7.2fx\n", "walferry-restore", r/1e6, b/r }'
awk -v r="$r_prefetch" -v b="$r_bunzip2" 'BEGIN { printf "%-58s %10.1f s %7.2fx\n", "walferry-restore --prefetch 8", r/1e6, b/r }'
awk -v p="$r_prefetch" -v w="$r_walferry" 'BEGIN { printf "prefetch vs no prefetch: %.2fx faster (goal: 1.50x or more)\n", w/p }'
