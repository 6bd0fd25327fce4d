#!/usr/bin/env bash
# walferry-cleanup against pg_archivecleanup, in the same run, on identical archive folders.
#
#   bench/cleanup.sh [FILES] [ROUNDS]        (defaults: 100000 files, 5 rounds)
#   BENCH_DIR=/some/ext4/dir bench/cleanup.sh   (default: /dev/shm, tmpfs, where file creation is cheap)
#
# 1. Bulk: FILES empty WAL-named files (timeline 1, consecutive segments); the cut-off keeps the upper
#    half, so that half the files are removed. Each round builds two identical folders and runs
#    both tools, alternating which goes first; both must leave exactly the same files.
#    A third folder, identical but with an identity record and two registered readers whose
#    positions are at the cut-off, is cleaned by walferry-cleanup --reader (the multi-standby setup:
#    the same files removed, plus the readers' lock, records and one durable record write).
# 2. Start-up: 300 runs of each tool on a 10-file archive with nothing to remove, the cost that
#    archive_cleanup_command pays at every restartpoint.
# Prints medians and the ratio pg_archivecleanup / walferry-cleanup (above 1 means walferry is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

files=${1:-100000}
rounds=${2:-5}
base=${BENCH_DIR:-/dev/shm}
pg=$(pg_config --bindir)/pg_archivecleanup

echo "building walferry-cleanup (release, static Swift runtime)..." >&2
swift build -c release --static-swift-stdlib --product walferry-cleanup >&2
ours=$(swift build -c release --static-swift-stdlib --show-bin-path)/walferry-cleanup

work=$(mktemp -d "$base/walferry-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The cut-off that keeps the upper half: segment number files/2, as a %08X%08X%08X name.
cutoff=$(python3 -c "n=$files//2; print('%08X%08X%08X' % (1, n // 256, n % 256))")

make_archive() {  # make_archive DIR: FILES empty files named like 16 MB segments of timeline 1
    python3 - "$1" "$files" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    os.close(os.open(os.path.join(d, "%08X%08X%08X" % (1, i // 256, i % 256)), os.O_CREAT | os.O_WRONLY, 0o644))
EOF
}

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

make_reader_archive() {  # make_reader_archive DIR: make_archive, an identity record and two readers
    make_archive "$1"
    printf 'walferry archive identity 1\nsystem identifier: 7712740923202838945\nwal segment size: 16777216\npostgresql version: 15\n' \
        > "$1/walferry.identity"
    "$ours" --register standby-a "$1" "$cutoff"
    "$ours" --register standby-b "$1" "$cutoff"
}

pg_times=() ours_times=() readers_times=()
for ((round = 1; round <= rounds; round++)); do
    rm -rf "$work/pg" "$work/ours" "$work/readers"
    make_archive "$work/pg"
    make_archive "$work/ours"
    make_reader_archive "$work/readers"
    sync
    run_pg() { local t0; t0=$(now_us); "$pg" "$work/pg" "$cutoff"; pg_times+=($(( $(now_us) - t0 ))); }
    run_ours() { local t0; t0=$(now_us); "$ours" "$work/ours" "$cutoff"; ours_times+=($(( $(now_us) - t0 ))); }
    run_readers() { local t0; t0=$(now_us); "$ours" --reader standby-a "$work/readers" "$cutoff"; readers_times+=($(( $(now_us) - t0 ))); }
    if ((round % 2)); then run_pg; run_ours; run_readers; else run_readers; run_ours; run_pg; fi
    left_pg=$(ls -f "$work/pg" | sort | md5sum) left_ours=$(ls -f "$work/ours" | sort | md5sum)
    left_readers=$(ls -f "$work/readers" | grep -v '^walferry\.' | sort | md5sum)
    if [[ $left_pg != "$left_ours" || $left_pg != "$left_readers" ]]; then
        echo "error: the runs left different files in round $round" >&2
        exit 1
    fi
done
kept=$(ls -f "$work/ours" | grep -c '^0')
pg_ms=$(printf '%s\n' "${pg_times[@]}" | median)
ours_ms=$(printf '%s\n' "${ours_times[@]}" | median)
readers_ms=$(printf '%s\n' "${readers_times[@]}" | median)

# Start-up: a small archive, nothing to remove.
rm -rf "$work/small"; mkdir "$work/small"
for i in $(seq 10 19); do : > "$work/small/0000000100000000000000$i"; done
loop() { local t0 i; t0=$(now_us); for ((i = 0; i < 300; i++)); do "$@" "$work/small" 000000010000000000000001; done; echo $(( ($(now_us) - t0) / 300 )); }
startup_pg=() startup_ours=() startup_true=()
for ((round = 0; round < 5; round++)); do
    startup_pg+=($(loop "$pg")); startup_ours+=($(loop "$ours")); startup_true+=($(loop /bin/true))
done
s_pg=$(printf '%s\n' "${startup_pg[@]}" | median)
s_ours=$(printf '%s\n' "${startup_ours[@]}" | median)
s_true=$(printf '%s\n' "${startup_true[@]}" | median)

fs=$(stat -f -c %T "$work")
echo
echo "walferry-cleanup vs pg_archivecleanup ($("$pg" --version | head -1)), $fs, $(nproc) cores"
printf '%-44s %12s %12s %8s\n' "" "pg (ms)" "walferry (ms)" "ratio"
awk -v f="$files" -v k="$kept" -v a="$pg_ms" -v b="$ours_ms" -v r="$rounds" 'BEGIN {
    printf "%-44s %12.1f %12.1f %7.2fx\n", sprintf("%d files, %d removed (median of %d)", f, f - k, r), a / 1000, b / 1000, a / b }'
awk -v a="$pg_ms" -v b="$readers_ms" 'BEGIN {
    printf "%-44s %12.1f %12.1f %7.2fx\n", "the same, --reader with 2 registered readers", a / 1000, b / 1000, a / b }'
awk -v a="$s_pg" -v b="$s_ours" -v t="$s_true" 'BEGIN {
    printf "%-44s %12.2f %12.2f %7.2fx\n", "one run on a 10-file archive (median of 5x300)", a / 1000, b / 1000, a / b
    printf "%-44s %12.2f\n", "/bin/true in the same loop", t / 1000 }'
echo "(ratio = pg_archivecleanup time / walferry-cleanup time; above 1.00 means walferry is faster)"
