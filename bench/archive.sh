#!/usr/bin/env bash
# walferry-archive against the commands it replaces, in the same run, on the same real WAL segments,
# each run the way the archiver runs it (sh -c from the data directory, into an ext4 archive folder):
#   plain:   cp, `dd conv=fsync` (cp + fsync), the same followed by a read-back past the page cache
#            (`dd iflag=direct`: what walferry's default verification does), walferry-archive %p DIR/%f
#            with --verify storage (the default) and --verify cache
#   bzip2:   bzip2 -9, walferry-archive %p DIR/%f.bz2
#   start-up: /bin/true against walferry-archive --version
# Prints per-segment medians and the ratios of the issue's goals.
#
#   bench/archive.sh [SEGMENTS] [ROUNDS]      (defaults: 20 segments, 3 rounds)
#   WAL_DIR=/dir/of/segments bench/archive.sh (default: make them with a pgbench cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
segments=${1:-20}
rounds=${2:-3}

echo "building walferry-archive (release, static Swift runtime)..." >&2
swift build -c release --static-swift-stdlib --product walferry-archive >&2
ours=$root/.build/release/walferry-archive

work=$(mktemp -d /tmp/walferry-bench-archive.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

wal=${WAL_DIR:-}
if [[ -z $wal ]]; then
    echo "making real WAL: a cluster under pgbench, archiving with cp..." >&2
    bindir=$(pg_config --bindir)
    as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    mkdir -p "$work/pg/archive"
    [[ $(id -u) == 0 ]] && chown -R postgres: "$work/pg"
    as_pg "$bindir/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >/dev/null
    cat >>"$work/pg/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$work/pg'
fsync = off
archive_mode = on
archive_command = 'cp %p $work/pg/archive/%f'
max_wal_size = 4GB
EOF
    as_pg "$bindir/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start >/dev/null
    as_pg "$bindir/pgbench" -h "$work/pg" -U postgres -i -s 10 -q postgres >/dev/null 2>&1
    as_pg "$bindir/pgbench" -h "$work/pg" -U postgres -c 2 -j 2 -T 20 -n postgres >/dev/null 2>&1
    as_pg "$bindir/psql" -X -q -h "$work/pg" -U postgres -c "SELECT pg_switch_wal()" postgres >/dev/null
    sleep 2
    as_pg "$bindir/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null
    wal=$work/pg/archive
fi
mapfile -t names < <(ls "$wal" | grep -E '^[0-9A-F]{24}$' | head -n "$segments")
((${#names[@]})) || { echo "no WAL segments in $wal" >&2; exit 1; }

# The archiver's view: a data directory whose pg_wal holds the segments (hard links or copies).
mkdir -p "$work/data/pg_wal" "$work/dest"
for name in "${names[@]}"; do ln "$wal/$name" "$work/data/pg_wal/$name" 2>/dev/null || cp "$wal/$name" "$work/data/pg_wal/$name"; done
cat "$work/data/pg_wal/"* >/dev/null  # into the page cache, as a just-written segment is

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A samples
methods=(cp cp+fsync cp+fsync+readback walferry walferry-cache bzip2-9 walferry-bz2)
command_for() {  # command_for METHOD NAME
    case $1 in
        cp) echo "cp pg_wal/$2 $work/dest/$2" ;;
        cp+fsync) echo "dd if=pg_wal/$2 of=$work/dest/$2 bs=1M conv=fsync status=none" ;;
        cp+fsync+readback) echo "dd if=pg_wal/$2 of=$work/dest/$2 bs=1M conv=fsync status=none && dd if=$work/dest/$2 iflag=direct of=/dev/null bs=1M status=none" ;;
        walferry) echo "$ours pg_wal/$2 $work/dest/$2" ;;
        walferry-cache) echo "$ours --verify cache pg_wal/$2 $work/dest/$2" ;;
        bzip2-9) echo "bzip2 -9 -c pg_wal/$2 > $work/dest/$2.bz2" ;;
        walferry-bz2) echo "$ours pg_wal/$2 $work/dest/$2.bz2" ;;
    esac
}
cd "$work/data"
for ((round = 1; round <= rounds; round++)); do
    for method in "${methods[@]}"; do
        rm -rf "$work/dest"; mkdir "$work/dest"; sync
        for name in "${names[@]}"; do
            cmd=$(command_for "$method" "$name")
            t0=$(now_us); sh -c "$cmd" 2>/dev/null; t1=$(now_us)
            samples[$method]+="$((t1 - t0)) "
        done
        if [[ $method == walferry-bz2 ]]; then  # the output must decompress to the input
            for name in "${names[@]}"; do bzip2 -dc "$work/dest/$name.bz2" | cmp -s - "pg_wal/$name" || { echo "error: $name.bz2 differs" >&2; exit 1; }; done
        fi
    done
done
cd "$root"

loop() { local t0 i; t0=$(now_us); for ((i = 0; i < 300; i++)); do "$@" >/dev/null; done; echo $(( ($(now_us) - t0) / 300 )); }
startup_true=() startup_ours=()
for ((round = 0; round < 5; round++)); do startup_true+=($(loop /bin/true)); startup_ours+=($(loop "$ours" --version)); done

med() { printf '%s\n' ${samples[$1]} | median; }
cp_us=$(med cp) fsync_us=$(med cp+fsync) readback_us=$(med cp+fsync+readback) ours_us=$(med walferry)
cache_us=$(med walferry-cache) bz_us=$(med bzip2-9) ours_bz_us=$(med walferry-bz2)
true_us=$(printf '%s\n' "${startup_true[@]}" | median)
ours_start_us=$(printf '%s\n' "${startup_ours[@]}" | median)
size=$(stat -c %s "$wal/${names[0]}")

echo
echo "walferry-archive, ${#names[@]} real segments of $((size / 1048576)) MB, $rounds rounds, $(nproc) cores, archive on $(stat -f -c %T /tmp)"
printf '%-40s %10s\n' "per segment (median)" "ms"
for method in "${methods[@]}"; do printf '%-40s %10.2f\n' "$method" "$(echo "$(med "$method") / 1000" | bc -l)"; done
awk -v a="$ours_us" -v c="$cp_us" -v f="$fsync_us" -v r="$readback_us" -v k="$cache_us" -v b="$bz_us" -v o="$ours_bz_us" -v t="$true_us" -v s="$ours_start_us" 'BEGIN {
    printf "\nwalferry-archive / cp                      %6.2fx\n", a / c
    printf "walferry-archive / cp + fsync              %6.2fx   (goal: at most 1.2x)\n", a / f
    printf "walferry-archive / cp + fsync + read-back  %6.2fx   (the same verification by hand)\n", a / r
    printf "walferry-archive --verify cache / cp+fsync %6.2fx\n", k / f
    printf "walferry-archive %%f.bz2 / bzip2 -9         %6.2fx   (goal: at most 0.35x)\n", o / b
    printf "start-up: --version %.2f ms, /bin/true %.2f ms: %+.2f ms   (goal: at most +3 ms)\n", s / 1000, t / 1000, (s - t) / 1000
}'
