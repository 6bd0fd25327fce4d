#!/usr/bin/env bash
# Benchmark of walferry-recover against the manual way, side by side in one run, on the same backup:
#   tar -xjf base.tar.bz2 -C DIR                 (what walferry-recover replaces: bzip2 -d, one thread)
#   lbzip2 -d -n$JOBS < base.tar.bz2 | tar -x    (a parallel bzip2 decoder on the same cores)
#   walferry-recover -B BACKUP -D DIR --pitr     (release build: parallel decode, every file checked
#                                                 against backup_manifest, syncfs, rename into place)
# and the two tar commands followed by `sync`, since walferry-recover's result is durable and theirs
# is not until then. The backup is walferry-backup's of a cluster filled by `pgbench -i -s $SCALE`
# (about 450 MB at 30). Prints median wall and CPU times, and each command's time as a ratio of
# walferry-recover's (the issue's goal: walferry-recover at most 0.55x tar -xjf on 2 cores, and no
# slower than lbzip2 -d | tar -x).
#
# Run as root (PostgreSQL runs as the postgres user through runuser):
#   bench/recover.sh                       # RUNS=3 SCALE=30 JOBS=2, in a fresh temp dir
#   WORK=/tmp/wr RUNS=5 bench/recover.sh   # reuse $WORK's cluster and backup if there
# Needs: bzip2, lbzip2, time (/usr/bin/time), PostgreSQL server binaries (pg_config --bindir), swift.

set -euo pipefail

RUNS=${RUNS:-3}
SCALE=${SCALE:-30}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/walferry-recover-bench.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
PGBIN=$(pg_config --bindir)
PORT=${PORT:-54350}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench/recover.sh: $*"; exit 1; }
as_pg() { runuser -u postgres -- "$@"; }

[ "$(id -u)" = 0 ] || die "run as root: the cluster runs as the postgres user through runuser"
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries in $PGBIN"
for tool in bzip2 lbzip2 /usr/bin/time; do
    command -v "$tool" >/dev/null || { say "installing missing $tool"; apt-get install -y lbzip2 time bzip2 >/dev/null; }
done

say "building walferry-backup and walferry-recover (release, static Swift runtime)"
SCRATCH="$ROOT/.build-bench"
for product in walferry-backup walferry-recover walferry-restore; do
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --product "$product" --scratch-path "$SCRATCH" 2>&1 | tail -1 >&2)
done
BIN="$SCRATCH/release"

# --- the backup (made once, reused) ---------------------------------------------------------------

DIR=$WORK/pg
if [ ! -f "$DIR/backups/done" ]; then
    say "making a cluster with pgbench -i -s $SCALE and backing it up in $DIR"
    rm -rf "$DIR"
    mkdir -p "$DIR/backups" "$DIR/archive"
    chown -R postgres: "$DIR"
    as_pg "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
    cat >>"$DIR/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PORT
max_wal_size = 4GB
fsync = off
archive_mode = on
archive_command = 'cp %p $DIR/archive/%f'
EOF
    as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
    trap 'as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
    as_pg "$PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
    as_pg "$BIN/walferry-backup" -d "host=$DIR port=$PORT user=postgres dbname=postgres" -D "$DIR/data" \
        -o "$DIR/backups" -c fast -j "$JOBS" --wal-archive "$DIR/archive"
    as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
    trap - EXIT
    touch "$DIR/backups/done"
fi
BACKUP=$(ls -d "$DIR"/backups/2* | tail -1)
TARBALL=$BACKUP/base.tar.bz2
[ -f "$TARBALL" ] || die "no base.tar.bz2 in $BACKUP"

OUT=$WORK/out
RESULTS=$WORK/results
rm -rf "$OUT" "$RESULTS"
mkdir -p "$OUT" "$RESULTS"
chown postgres: "$OUT"

# timed NAME COMMAND: one run under /usr/bin/time -v; appends "wall cpu" to RESULTS/NAME.
timed() {
    local name=$1
    shift
    /usr/bin/time -v -o "$RESULTS/last" "$@"
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); w = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2] }
                /User time/ { u = $2 } /System time/ { s = $2 }
                END { printf "%.2f %.2f\n", w, u + s }' "$RESULTS/last" >>"$RESULTS/$name"
}

fresh() { rm -rf "$OUT/data" "$OUT"/.data.* "$OUT"/data.*; sync; mkdir -m 700 "$OUT/data"; chown postgres: "$OUT/data"; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$RUNS"); do
    say "round $round/$RUNS"
    cat "$TARBALL" >/dev/null  # the same warm page cache for every command
    fresh; timed tar sh -c "tar -xjf '$TARBALL' -C '$OUT/data'"
    fresh; timed tar+sync sh -c "tar -xjf '$TARBALL' -C '$OUT/data' && sync"
    fresh; timed lbzip2 sh -c "lbzip2 -d -n$JOBS < '$TARBALL' | tar -x -C '$OUT/data'"
    fresh; timed lbzip2+sync sh -c "lbzip2 -d -n$JOBS < '$TARBALL' | tar -x -C '$OUT/data' && sync"
    fresh; timed ours "$BIN/walferry-recover" -B "$BACKUP" -D "$OUT/data" --pitr -j "$JOBS"
done

# --- checking (outside the timings) ---------------------------------------------------------------

say "checking: walferry-recover's result against tar's"
fresh
tar -xjf "$TARBALL" -C "$OUT/data"
mv "$OUT/data" "$OUT/tar-copy"
fresh
"$BIN/walferry-recover" -B "$BACKUP" -D "$OUT/data" --pitr -j "$JOBS"
# The same files with the same bytes, but for what walferry-recover adds or rewrites.
diff -r -q -x postgresql.auto.conf -x recovery.signal -x backup_manifest "$OUT/tar-copy" "$OUT/data" \
    || die "walferry-recover's data directory differs from tar -xjf's"
rm -rf "$OUT/tar-copy"

# --- report ---------------------------------------------------------------------------------------

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$RESULTS/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
OURS_WALL=$(col ours 1 | median)

echo
echo "walferry-recover benchmark: $(nproc) CPUs, jobs $JOBS, $RUNS rounds, medians; pgbench scale $SCALE;" \
    "base.tar.bz2 $(stat -c %s "$TARBALL") bytes, $(bzip2 -dc "$TARBALL" | wc -c) bytes of tar;" \
    "$(lbzip2 --version 2>&1 | head -1)"
echo
printf '%-12s %8s %8s %16s\n' command wall_s cpu_s recover/command
for name in tar tar+sync lbzip2 lbzip2+sync ours; do
    wall=$(col $name 1 | median); cpu=$(col $name 2 | median)
    printf '%-12s %8s %8s %15sx\n' "$name" "$wall" "$cpu" "$(ratio "$OURS_WALL" "$wall")"
done
echo
echo "goal: walferry-recover <= 0.55x tar -xjf, and <= 1.00x lbzip2 -d | tar -x"
echo "load average before the rounds: $LOAD_BEFORE (other work on the same CPUs slows the parallel decoder most)"
echo "raw timings: $RESULTS; backup: $BACKUP"
