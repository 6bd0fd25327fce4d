#!/usr/bin/env bash
# walferry-check's two costs that grow with the archive, each measured in the same run as its
# reference:
#
#   bench/check.sh [NAMES] [SEGMENTS] [ROUNDS]   (defaults: 100000 names, 64 segments, 5 rounds)
#   BENCH_DIR=/var/tmp                        where the clusters and the archives live
#   WALFERRY_SCRATCH=.build-check-bench       SwiftPM scratch path for the release build
#
# 1. Continuity: an archive of NAMES empty files named as consecutive 16 MB segments of timeline 1,
#    with an identity record; `walferry-check -A DIR` lists it and decides continuity (and the
#    identity and timeline checks). The goal (issue 13) is under 1 s; printed against `ls -f DIR`,
#    the floor of listing the directory at all.
# 2. --deep: SEGMENTS real segments (pgbench on a PostgreSQL 15 primary, archived by walferry-archive
#    as %f.bz2); `walferry-check -A DIR --deep` (every file decompressed, its stream CRCs, page headers
#    and record CRCs checked, files on every CPU) against `bunzip2 -t` over the same files, one after
#    the other as a script would, and `lbzip2 -t` (parallel, CRCs only) for reference. The goal is at
#    least as fast as bunzip2 -t.
# Prints medians and ratios (reference time / walferry time: above 1 means walferry is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "bench/check.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

names=${1:-100000}
segments=${2:-64}
rounds=${3:-5}
base=${BENCH_DIR:-/var/tmp}
scratch=${WALFERRY_SCRATCH:-.build-check-bench}
pgbin=$(pg_config --bindir)
for tool in bunzip2 lbzip2 python3 "$pgbin/initdb" "$pgbin/pgbench"; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup installs it)"
done
[[ -d /dev/shm ]] || die "/dev/shm is missing"

say "building walferry-check and walferry-archive (release, static Swift runtime)..."
swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product walferry-check >&2
swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product walferry-archive >&2
built=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)

work=$(mktemp -d "$base/walferry-check-bench.XXXXXX")
chmod 755 "$work"
names_dir=$(mktemp -d /dev/shm/walferry-check-names.XXXXXX)
cleanup() {
    [[ -f $work/primary/postmaster.pid ]] && as_postgres "$pgbin/pg_ctl" -D "$work/primary" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work" "$names_dir"
}
trap cleanup EXIT
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
check=$built/walferry-check

# --- 1. continuity over NAMES empty segment names -------------------------------------------------
python3 - "$names_dir" "$names" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "%08X%08X%08X" % (1, i // 256, i % 256)), os.O_CREAT | os.O_WRONLY, 0o644))
with open(os.path.join(d, "walferry.identity"), "w") as f:
    f.write("walferry archive identity 1\nsystem identifier: 1\nwal segment size: 16777216\npostgresql version: 15\n")
EOF
out=$("$check" -A "$names_dir" --format json) || true
grep -q "\"archive.continuity\", \"status\": \"ok\", \"message\": \"$names segments" <<<"$out" || die "continuity did not see $names segments: $out"
ours_times=() ls_times=()
for ((round = 0; round < rounds; round++)); do
    t0=$(now_us); "$check" -A "$names_dir" --format json >/dev/null || true; ours_times+=($(( $(now_us) - t0 )))
    t0=$(now_us); ls -f "$names_dir" >/dev/null; ls_times+=($(( $(now_us) - t0 )))
done
c_ours=$(printf '%s\n' "${ours_times[@]}" | median)
c_ls=$(printf '%s\n' "${ls_times[@]}" | median)

# --- 2. --deep over SEGMENTS real .bz2 segments ---------------------------------------------------
say "making $segments segments of pgbench WAL..."
mkdir -p "$work/bin" "$work/archive" "$work/socket"
cp "$built/walferry-archive" "$work/bin/"
[[ $(id -u) == 0 ]] && chown -R postgres:postgres "$work"
sql() { as_postgres "$pgbin/psql" -X -At -q -h "$work/socket" -p 55441 -U postgres -d postgres -c "$1"; }
as_postgres "$pgbin/initdb" -D "$work/primary" -A trust -U postgres --no-sync --no-instructions >/dev/null
cat >>"$work/primary/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$work/socket'
port = 55441
fsync = off
shared_buffers = '128MB'
max_wal_size = '4GB'
archive_mode = on
archive_command = '$work/bin/walferry-archive %p $work/archive/%f.bz2'
EOF
as_postgres "$pgbin/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null
first=$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
as_postgres "$pgbin/pgbench" -i -s 10 -q -h "$work/socket" -p 55441 -U postgres postgres >/dev/null 2>&1
segno() { echo $((16#${1:8:8} * 256 + 16#${1:16:8})); }
while (( $(segno "$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")") - $(segno "$first") < segments )); do
    as_postgres "$pgbin/pgbench" -n -c 2 -j 2 -T 5 -h "$work/socket" -p 55441 -U postgres postgres >/dev/null 2>&1
done
last=$(sql "SELECT pg_walfile_name(pg_switch_wal())")
until [[ $(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") > "$last" || \
         $(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") == "$last" ]]; do sleep 0.5; done
as_postgres "$pgbin/pg_ctl" -D "$work/primary" -m fast -w stop >/dev/null
files=("$work/archive"/*.bz2)
archived=${#files[@]}
say "archived $archived files ($(du -sh "$work/archive" | cut -f1) compressed)"
out=$("$check" -A "$work/archive" --deep --format json) || die "walferry-check --deep failed: $out"
grep -q '"archive.deep", "status": "ok"' <<<"$out" || die "--deep did not pass: $out"
cat "${files[@]}" >/dev/null  # the page cache holds them for every run

deep_ours=() deep_bunzip2=() deep_lbzip2=()
for ((round = 0; round < rounds; round++)); do
    run_ours() { local t0; t0=$(now_us); "$check" -A "$work/archive" --deep --format json >/dev/null; deep_ours+=($(( $(now_us) - t0 ))); }
    run_bunzip2() { local t0; t0=$(now_us); bunzip2 -t "${files[@]}" 2>/dev/null; deep_bunzip2+=($(( $(now_us) - t0 ))); }
    run_lbzip2() { local t0; t0=$(now_us); lbzip2 -t "${files[@]}" 2>/dev/null; deep_lbzip2+=($(( $(now_us) - t0 ))); }
    if ((round % 2)); then run_ours; run_bunzip2; run_lbzip2; else run_lbzip2; run_bunzip2; run_ours; fi
done
d_ours=$(printf '%s\n' "${deep_ours[@]}" | median)
d_bunzip2=$(printf '%s\n' "${deep_bunzip2[@]}" | median)
d_lbzip2=$(printf '%s\n' "${deep_lbzip2[@]}" | median)

echo
echo "walferry-check, $(nproc) cores, medians of $rounds rounds"
printf '%-58s %12s %12s %8s\n' "" "reference" "walferry" "ratio"
awk -v n="$names" -v ls="$c_ls" -v ours="$c_ours" -v s="$archived" -v b="$d_bunzip2" -v l="$d_lbzip2" -v d="$d_ours" 'BEGIN {
    printf "%-58s %9.1f ms %9.1f ms %7.2fx\n", "continuity, " n " names vs ls -f (goal: under 1000 ms)", ls / 1000, ours / 1000, ls / ours
    printf "%-58s %9.1f ms %9.1f ms %7.2fx\n", "continuity, " n " names vs the 1000 ms goal", 1000, ours / 1000, 1000000 / ours
    printf "%-58s %9.1f ms %9.1f ms %7.2fx\n", "--deep, " s " .bz2 files vs bunzip2 -t (goal: ratio >= 1)", b / 1000, d / 1000, b / d
    printf "%-58s %9.1f ms %9.1f ms %7.2fx\n", "--deep, " s " .bz2 files vs lbzip2 -t (parallel, CRCs only)", l / 1000, d / 1000, l / d
}'
