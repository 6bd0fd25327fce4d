#!/usr/bin/env bash
# Benchmark of walferry-backup against the manual way, side by side in one run, on the same data
# directories:
#   tar -cf - DATA | bzip2 -9 > file        (what walferry-backup replaces)
#   tar -cf - DATA | lbzip2 -9 -n2 > file   (a parallel bzip2 on the same 2 cores)
#   walferry-backup -c fast -o DIR          (release build, Swift runtime linked statically)
# on a cluster filled by `pgbench -i -s $SCALE` (about 450 MB at 30) and a small one
# (`-s $SMALL_SCALE`), running, so that walferry-backup can call pg_backup_start/stop. tar leaves out
# pg_wal's segments, as walferry-backup does, so that both read about the same bytes. It prints median
# wall and CPU times, throughput ratios, output sizes against bzip2 -9 and the peak RSS of every
# command on both sizes (walferry-backup's must not grow with the data).
#
# Run as root (PostgreSQL runs as the postgres user through runuser):
#   bench/backup.sh                      # RUNS=3 SCALE=30 SMALL_SCALE=3 JOBS=2, data in a fresh temp dir
#   WORK=/tmp/wb RUNS=5 bench/backup.sh  # reuse $WORK/pg (bench/bzip2.sh's stopped -s 30 cluster) if there
# Needs: bzip2, lbzip2, time (/usr/bin/time), PostgreSQL server binaries (pg_config --bindir), swift.

set -euo pipefail

RUNS=${RUNS:-3}
SCALE=${SCALE:-30}
SMALL_SCALE=${SMALL_SCALE:-3}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/walferry-backup-bench.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
PGBIN=$(pg_config --bindir)
PORT_BASE=${PORT_BASE:-54340}

log() { printf '%s\n' "$*" >&2; }
as_pg() { runuser -u postgres -- "$@"; }

for tool in bzip2 lbzip2 /usr/bin/time; do
    command -v "$tool" >/dev/null || { log "installing missing $tool"; apt-get install -y lbzip2 time bzip2 >/dev/null; }
done

log "building walferry-backup (release, static Swift runtime)"
SCRATCH="$ROOT/.build-bench"
(cd "$ROOT" && swift build -c release --static-swift-stdlib --product walferry-backup --scratch-path "$SCRATCH" 2>&1 | tail -1 >&2)
OURS="$SCRATCH/release/walferry-backup"

# --- the clusters ---------------------------------------------------------------------------------

# cluster NAME SCALE PORT: makes $WORK/NAME (data, archive, socket in $WORK/NAME) unless it exists.
cluster() {
    local name=$1 scale=$2 port=$3 dir=$WORK/$1
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        log "making a cluster with pgbench -i -s $scale in $dir"
        rm -rf "$dir"
        mkdir -p "$dir/archive"
        chown -R postgres: "$dir"
        as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
        cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
wal_level = replica
archive_mode = on
archive_command = 'cp %p $dir/archive/%f'
max_wal_size = 4GB
fsync = off
synchronous_commit = off
EOF
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
        as_pg "$PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    # A cluster reused from bench/bzip2.sh listens where that script said: read it back.
    local conf_port conf_socket
    conf_port=$(awk -F' *= *' '$1 == "port" { p = $2 } END { print p }' "$dir/data/postgresql.conf")
    conf_socket=$(awk -F"'" '/^unix_socket_directories/ { s = $2 } END { print s }' "$dir/data/postgresql.conf")
    echo "$conf_socket $conf_port"
}

start() {  # a server left running by an interrupted run is reused
    as_pg "$PGBIN/pg_ctl" -D "$WORK/$1/data" status >/dev/null 2>&1 && return 0
    as_pg "$PGBIN/pg_ctl" -D "$WORK/$1/data" -l "$WORK/$1/server.log" -w start >/dev/null
}
stop() { as_pg "$PGBIN/pg_ctl" -D "$WORK/$1/data" -m fast -w stop >/dev/null 2>&1 || true; }

read -r BIG_SOCKET BIG_PORT < <(cluster pg "$SCALE" "$PORT_BASE")
read -r SMALL_SOCKET SMALL_PORT < <(cluster pg-small "$SMALL_SCALE" $((PORT_BASE + 1)))
start pg
start pg-small
trap 'stop pg; stop pg-small' EXIT

OUT=$WORK/backup-out
RESULTS=$WORK/backup-results
rm -rf "$OUT" "$RESULTS"
mkdir -p "$OUT/ours" "$RESULTS"

# timed NAME SIZE COMMAND: one run under /usr/bin/time -v; appends "wall cpu rss_kb" to RESULTS/SIZE.NAME.
timed() {
    local name=$1 size=$2
    shift 2
    /usr/bin/time -v -o "$RESULTS/last" "$@"
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); w = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2] }
                /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { m = $2 }
                END { printf "%.2f %.2f %d\n", w, u + s, m }' "$RESULTS/last" >>"$RESULTS/$size.$name"
}

run_round() {  # run_round SIZE CLUSTER SOCKET PORT
    local size=$1 name=$2 socket=$3 port=$4 data=$WORK/$2/data
    sync
    # Warm the page cache the same way for every command.
    tar -C "$WORK/$name" --exclude="data/pg_wal/0*" -cf - data | cat >/dev/null
    timed bzip2 "$size" sh -c "tar -C '$WORK/$name' --exclude='data/pg_wal/0*' -cf - data | bzip2 -9 > '$OUT/$size.bzip2.tar.bz2'"
    timed lbzip2 "$size" sh -c "tar -C '$WORK/$name' --exclude='data/pg_wal/0*' -cf - data | lbzip2 -9 -n$JOBS > '$OUT/$size.lbzip2.tar.bz2'"
    rm -rf "$OUT/ours/$size"
    mkdir -p "$OUT/ours/$size"
    timed ours "$size" "$OURS" -d "host=$socket port=$port user=postgres dbname=postgres" -D "$data" \
        -o "$OUT/ours/$size" -c fast -j "$JOBS"
}

for round in $(seq "$RUNS"); do
    log "round $round/$RUNS: scale $SCALE"
    run_round big pg "$BIG_SOCKET" "$BIG_PORT"
done
log "small cluster (scale $SMALL_SCALE), for memory"
run_round small pg-small "$SMALL_SOCKET" "$SMALL_PORT"

# --- checking (outside the timings) ---------------------------------------------------------------

log "checking outputs"
BACKUP=$(ls -d "$OUT"/ours/big/2*)
bzip2 -t "$BACKUP/base.tar.bz2"
tar -tjf "$BACKUP/base.tar.bz2" >/dev/null
tar -tjf "$OUT/big.bzip2.tar.bz2" >/dev/null

# --- report ---------------------------------------------------------------------------------------

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$RESULTS/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
INPUT=$(tar -C "$WORK/pg" --exclude="data/pg_wal/0*" -cf - data | wc -c)
OURS_INPUT=$(bzip2 -dc "$BACKUP/base.tar.bz2" | wc -c)

echo
echo "walferry-backup benchmark: $(nproc) CPUs, jobs $JOBS, $RUNS rounds, medians; pgbench scale $SCALE;" \
    "$(bzip2 --help 2>&1 | head -1 | sed 's/.*Version \([^,]*\),.*/bzip2 \1/'), $(lbzip2 --version 2>&1 | head -1)"
echo "uncompressed tar: tar $INPUT bytes, walferry-backup $OURS_INPUT bytes"
echo
printf '%-8s %8s %8s %8s %12s %10s %10s %12s %9s\n' tool wall_s cpu_s MB/s output_bytes vs_bzip2 vs_lbzip2 size/bzip2 rss_MiB
for name in bzip2 lbzip2 ours; do
    wall=$(col big.$name 1 | median); cpu=$(col big.$name 2 | median); rss=$(col big.$name 3 | sort -n | tail -1)
    if [ $name = ours ]; then size=$(stat -c %s "$BACKUP/base.tar.bz2"); else size=$(stat -c %s "$OUT/big.$name.tar.bz2"); fi
    printf '%-8s %8s %8s %8s %12s %9sx %9sx %12s %9s\n' "$name" "$wall" "$cpu" \
        "$(awk -v b="$INPUT" -v s="$wall" 'BEGIN { printf "%.1f", b / s / 1e6 }')" "$size" \
        "$(ratio "$(col big.bzip2 1 | median)" "$wall")" "$(ratio "$(col big.lbzip2 1 | median)" "$wall")" \
        "$(ratio "$size" "$(stat -c %s "$OUT/big.bzip2.tar.bz2")")" "$(mib "$rss")"
done
echo
echo "Peak RSS (MiB): scale $SMALL_SCALE vs scale $SCALE"
printf '%-8s %10s %10s\n' tool "s$SMALL_SCALE" "s$SCALE"
for name in bzip2 lbzip2 ours; do
    printf '%-8s %10s %10s\n' "$name" "$(mib "$(col small.$name 3 | tail -1)")" "$(mib "$(col big.$name 3 | sort -n | tail -1)")"
done
echo
echo "raw timings: $RESULTS; outputs: $OUT"
