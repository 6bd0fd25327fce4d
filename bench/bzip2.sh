#!/usr/bin/env bash
# Benchmark of walferry's parallel bzip2 engine against `bzip2 -9` and `lbzip2 -n2 -9`, and per core
# (one compression thread each: our `-n 1` against `lbzip2 -n1`), side by side in one run, on the same
# real PostgreSQL inputs read from the page cache:
#   1. a tar of a stopped data directory filled by `pgbench -i -s $SCALE` (about 500 MB at scale 30);
#   2. the 16 MB WAL segments that cluster archived (through a `cp` archive_command), compressed one
#      process per segment, as archive_command runs it.
# It prints median wall and CPU times, throughput ratios against bzip2 -9 and lbzip2 -n2, the per-core
# ratios against lbzip2 -n1 (CPU time too: another build on the machine shows in wall times first),
# output sizes against bzip2 -9, decompression of our output against `bzip2 -d`, and the peak RSS of
# every command on both input sizes (ours must not grow with the input).
#
# Run as root from anywhere (PostgreSQL runs as the postgres user through runuser):
#   bench/bzip2.sh                      # RUNS=3 SCALE=30 JOBS=2
#   WORK=/tmp/wb RUNS=5 bench/bzip2.sh  # keep and reuse the generated data in /tmp/wb
#   SCRATCH=.build-x bench/bzip2.sh     # build in another folder than .build
# Needs: bzip2, lbzip2, time (/usr/bin/time), PostgreSQL server binaries (pg_config --bindir), swift.

set -euo pipefail

RUNS=${RUNS:-3}
SCALE=${SCALE:-30}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-.build}
WORK=${WORK:-$(mktemp -d /tmp/walferry-bzip2-bench.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"  # the postgres user must reach $WORK/pg
PGBIN=$(pg_config --bindir)
PGPORT=${PGPORT:-54329}

log() { printf '%s\n' "$*" >&2; }

for tool in bzip2 lbzip2 /usr/bin/time; do
    if ! command -v "$tool" >/dev/null; then
        log "installing missing $tool"
        apt-get install -y lbzip2 time bzip2 >/dev/null
    fi
done

# --- the driver: release build, static standard library, as the tools ship -----------------------

log "building walferry-bzip2-bench"
(cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product walferry-bzip2-bench 2>&1 | tail -1 >&2)
OURS="$ROOT/$SCRATCH/release/walferry-bzip2-bench"

# --- the data: a real cluster, its tar, and its archived WAL --------------------------------------

DATA=$WORK/data
if [ ! -f "$DATA/pgdata.tar" ]; then
    log "making a cluster with pgbench -i -s $SCALE in $WORK/pg"
    rm -rf "$WORK/pg" "$DATA"
    mkdir -p "$WORK/pg/archive" "$DATA"
    chown -R postgres: "$WORK/pg"
    as_pg() { runuser -u postgres -- "$@"; }
    as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
    cat >>"$WORK/pg/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK/pg'
port = $PGPORT
wal_level = replica
archive_mode = on
archive_command = 'cp %p $WORK/pg/archive/%f'
max_wal_size = 4GB
fsync = off
synchronous_commit = off
EOF
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w start >/dev/null
    psql_pg() { as_pg "$PGBIN/psql" -h "$WORK/pg" -p "$PGPORT" -U postgres -XAtq -c "$1" postgres; }
    as_pg "$PGBIN/pgbench" -h "$WORK/pg" -p "$PGPORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
    # Some OLTP WAL too (full-page writes after the checkpoint), as a busy server archives.
    psql_pg "checkpoint"
    as_pg "$PGBIN/pgbench" -h "$WORK/pg" -p "$PGPORT" -U postgres -c 2 -T 20 postgres >/dev/null 2>&1
    psql_pg "select pg_switch_wal()" >/dev/null
    # Wait (with a deadline) until the archiver has copied every finished segment.
    for _ in $(seq 600); do
        [ "$(psql_pg "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'")" = 0 ] && break
        sleep 0.2
    done
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null
    # The WAL the cluster kept is benchmarked on its own below; the tar holds the rest, as a base backup.
    tar -C "$WORK/pg" --exclude="data/pg_wal/0*" -cf "$DATA/pgdata.tar" data
    mkdir -p "$DATA/wal"
    for f in "$WORK/pg/archive"/0*; do
        [ "$(stat -c %s "$f")" = 16777216 ] && cp "$f" "$DATA/wal/"
    done
fi
TAR=$DATA/pgdata.tar
SEGMENTS=("$DATA"/wal/0*)
SEGMENT=${SEGMENTS[$(( ${#SEGMENTS[@]} - 1 ))]}  # an OLTP one, from the end
cat "$TAR" "${SEGMENTS[@]}" >/dev/null            # into the page cache
TAR_BYTES=$(stat -c %s "$TAR")
WAL_BYTES=$(( ${#SEGMENTS[@]} * 16777216 ))
log "inputs: $TAR ($TAR_BYTES bytes), ${#SEGMENTS[@]} WAL segments"

# --- measuring ----------------------------------------------------------------------------------

OUT=$WORK/out
RESULTS=$WORK/results
rm -rf "$OUT" "$RESULTS"
mkdir -p "$OUT/wal" "$RESULTS"

# name -> command (reads stdin, writes stdout)
declare -A COMPRESS=(
    [bzip2]="bzip2 -9 -c"
    [lbzip2]="lbzip2 -9 -n$JOBS -c"
    [ours]="$OURS -9 -n $JOBS"
    [lbzip2-1]="lbzip2 -9 -n1 -c"
    [ours-1]="$OURS -9 -n 1"
)
NAMES=(bzip2 lbzip2 ours lbzip2-1 ours-1)
# name -> (command, file it decompresses)
declare -A DECOMPRESS=(
    [bzip2-d:ours]="bzip2 -dc"
    [lbzip2-d:ours]="lbzip2 -dc -n$JOBS"
    [ours-d:ours]="$OURS -d -n $JOBS"
    [bzip2-d:bzip2]="bzip2 -dc"
)
DNAMES=(bzip2-d:ours lbzip2-d:ours ours-d:ours bzip2-d:bzip2)

# timed NAME KIND INPUT OUTPUT COMMAND...: one run under /usr/bin/time; appends "wall cpu rss_kb".
timed() {
    local name=$1 kind=$2 input=$3 output=$4
    shift 4
    /usr/bin/time -f '%e %U %S %M' -o "$RESULTS/last" "$@" <"$input" >"$output"
    awk '{ printf "%s %.2f %d\n", $1, $2 + $3, $4 }' "$RESULTS/last" >>"$RESULTS/$kind.$name"
}

# The rounds interleave the commands (A B C A B C …), so that a slow spell of the VM hits all alike.
for round in $(seq "$RUNS"); do
    log "round $round/$RUNS: compressing the tar"
    for name in "${NAMES[@]}"; do
        # shellcheck disable=SC2086
        timed "$name" tar-c "$TAR" "$OUT/tar.$name.bz2" ${COMPRESS[$name]}
    done
    log "round $round/$RUNS: decompressing"
    for dname in "${DNAMES[@]}"; do
        file=${dname#*:}
        # shellcheck disable=SC2086
        timed "$dname" tar-d "$OUT/tar.$file.bz2" /dev/null ${DECOMPRESS[$dname]}
    done
    log "round $round/$RUNS: WAL segments, one process each"
    for name in "${NAMES[@]}"; do
        start=$EPOCHREALTIME
        for f in "${SEGMENTS[@]}"; do
            # shellcheck disable=SC2086
            ${COMPRESS[$name]} <"$f" >"$OUT/wal/${f##*/}.$name.bz2"
        done
        end=$EPOCHREALTIME
        echo "$(( (${end/./} - ${start/./}) / 1000 ))" >>"$RESULTS/wal-c.$name"
        # shellcheck disable=SC2086
        timed "$name" seg-c "$SEGMENT" "$OUT/seg.$name.bz2" ${COMPRESS[$name]}
    done
    for dname in bzip2-d:ours ours-d:ours bzip2-d:bzip2; do
        file=${dname#*:}
        dcmd=${DECOMPRESS[$dname]}
        start=$EPOCHREALTIME
        for f in "${SEGMENTS[@]}"; do
            # shellcheck disable=SC2086
            $dcmd <"$OUT/wal/${f##*/}.$file.bz2" >/dev/null
        done
        end=$EPOCHREALTIME
        echo "$(( (${end/./} - ${start/./}) / 1000 ))" >>"$RESULTS/wal-d.$dname"
    done
done

# --- peak memory: the same kind of data, 16 MB and the whole WAL through a pipe -------------------

log "peak memory"
for name in "${NAMES[@]}"; do
    /usr/bin/time -f '%M' -o "$RESULTS/rss-seg-c.$name" sh -c "${COMPRESS[$name]} <'$SEGMENT' >'$OUT/rss.$name.bz2'"
    /usr/bin/time -f '%M' -o "$RESULTS/rss-all-c.$name" sh -c "cat ${SEGMENTS[*]} | ${COMPRESS[$name]} >'$OUT/allwal.$name.bz2'"
done
for dname in bzip2-d:ours lbzip2-d:ours ours-d:ours; do
    /usr/bin/time -f '%M' -o "$RESULTS/rss-seg-d.$dname" sh -c "${DECOMPRESS[$dname]} <'$OUT/rss.ours.bz2' >/dev/null"
    /usr/bin/time -f '%M' -o "$RESULTS/rss-all-d.$dname" sh -c "cat '$OUT/allwal.ours.bz2' | ${DECOMPRESS[$dname]} >/dev/null"
done

# --- checking (outside the timings) ---------------------------------------------------------------

log "checking outputs"
"$OURS" -d <"$OUT/tar.ours.bz2" | cmp - "$TAR"
bzip2 -dc <"$OUT/tar.ours.bz2" | cmp - "$TAR"
lbzip2 -dc <"$OUT/tar.ours.bz2" | cmp - "$TAR"
"$OURS" -d <"$OUT/tar.bzip2.bz2" | cmp - "$TAR"
"$OURS" -d <"$OUT/tar.lbzip2.bz2" | cmp - "$TAR"
for f in "${SEGMENTS[@]}"; do
    "$OURS" -d <"$OUT/wal/${f##*/}.ours.bz2" | cmp - "$f"
    bzip2 -dc <"$OUT/wal/${f##*/}.ours.bz2" | cmp - "$f"
done

# --- report ---------------------------------------------------------------------------------------

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$2" '{ print $c }' "$RESULTS/$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mbs() { awk -v bytes="$1" -v s="$2" 'BEGIN { printf "%.1f", bytes / s / 1e6 }'; }
wal_total() { awk '{ s += $1 } END { print s }' "$@"; }

echo
echo "walferry bzip2 engine benchmark: $(nproc) CPUs, jobs $JOBS, $RUNS rounds, medians;" \
    "bzip2 $(bzip2 --help 2>&1 | head -1 | sed 's/.*Version \([^,]*\),.*/\1/'), $(lbzip2 --version 2>&1 | head -1)"
echo
echo "1. Compressing $TAR ($TAR_BYTES bytes)"
printf '%-8s %8s %8s %8s %12s %10s %10s %12s %9s\n' tool wall_s cpu_s MB/s output_bytes vs_bzip2 vs_lbzip2 size/bzip2 rss_MiB
for name in "${NAMES[@]}"; do
    wall=$(col tar-c.$name 1 | median); cpu=$(col tar-c.$name 2 | median); rss=$(col tar-c.$name 3 | sort -n | tail -1)
    size=$(stat -c %s "$OUT/tar.$name.bz2")
    printf '%-8s %8s %8s %8s %12s %9sx %9sx %12s %9s\n' "$name" "$wall" "$cpu" "$(mbs "$TAR_BYTES" "$wall")" "$size" \
        "$(ratio "$(col tar-c.bzip2 1 | median)" "$wall")" "$(ratio "$(col tar-c.lbzip2 1 | median)" "$wall")" \
        "$(ratio "$size" "$(stat -c %s "$OUT/tar.bzip2.bz2")")" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
done
echo
echo "1b. Per core: one compression thread each (ours -n 1 against lbzip2 -n1), CPU = user + sys"
printf '%-10s %-8s %8s %8s %14s %14s %12s %9s\n' input tool wall_s cpu_s wall_vs_lbzip2 cpu_vs_lbzip2 size/bzip2 rss_MiB
for input in tar seg; do
    for name in lbzip2-1 ours-1; do
        wall=$(col $input-c.$name 1 | median); cpu=$(col $input-c.$name 2 | median); rss=$(col $input-c.$name 3 | sort -n | tail -1)
        printf '%-10s %-8s %8s %8s %13sx %13sx %12s %9s\n' "$input" "$name" "$wall" "$cpu" \
            "$(ratio "$(col $input-c.lbzip2-1 1 | median)" "$wall")" "$(ratio "$(col $input-c.lbzip2-1 2 | median)" "$cpu")" \
            "$(ratio "$(stat -c %s "$OUT/$input.$name.bz2")" "$(stat -c %s "$OUT/$input.bzip2.bz2")")" \
            "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
    done
done
echo "   (ratios above 1 mean ours is faster; tar = the data-directory tar, seg = ${SEGMENT##*/})"
echo
echo "2. Decompressing to /dev/null (command:file it reads)"
printf '%-16s %8s %8s %8s %22s %9s\n' command wall_s cpu_s MB/s speed_vs_bzip2-d:ours rss_MiB
for dname in "${DNAMES[@]}"; do
    wall=$(col tar-d.$dname 1 | median); cpu=$(col tar-d.$dname 2 | median); rss=$(col tar-d.$dname 3 | sort -n | tail -1)
    printf '%-16s %8s %8s %8s %21sx %9s\n' "$dname" "$wall" "$cpu" "$(mbs "$TAR_BYTES" "$wall")" \
        "$(ratio "$(col tar-d.bzip2-d:ours 1 | median)" "$wall")" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
done
echo "   ours -d vs bzip2 -d of bzip2's own file: $(ratio "$(col tar-d.bzip2-d:bzip2 1 | median)" "$(col tar-d.ours-d:ours 1 | median)")x"
echo
echo "3. ${#SEGMENTS[@]} WAL segments ($WAL_BYTES bytes), one process per segment as archive_command runs it"
printf '%-8s %8s %8s %12s %10s %10s %12s %16s\n' tool wall_s MB/s output_bytes vs_bzip2 vs_lbzip2 size/bzip2 rss_MiB_1_segment
for name in "${NAMES[@]}"; do
    ms=$(median <"$RESULTS/wal-c.$name"); wall=$(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 1000 }')
    size=$(cat "$OUT"/wal/*."$name".bz2 | wc -c); bsize=$(cat "$OUT"/wal/*.bzip2.bz2 | wc -c)
    rss=$(col seg-c.$name 3 | sort -n | tail -1)
    printf '%-8s %8s %8s %12s %9sx %9sx %12s %16s\n' "$name" "$wall" "$(mbs "$WAL_BYTES" "$wall")" "$size" \
        "$(ratio "$(median <"$RESULTS/wal-c.bzip2")" "$ms")" "$(ratio "$(median <"$RESULTS/wal-c.lbzip2")" "$ms")" \
        "$(ratio "$size" "$bsize")" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
done
for dname in bzip2-d:ours ours-d:ours bzip2-d:bzip2; do
    ms=$(median <"$RESULTS/wal-d.$dname")
    printf '   decompress %-14s %8s s  %sx vs bzip2-d:ours\n' "$dname" "$(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 1000 }')" \
        "$(ratio "$(median <"$RESULTS/wal-d.bzip2-d:ours")" "$ms")"
done
echo
echo "4. Peak RSS (MiB) on one 16 MB segment and on all ${#SEGMENTS[@]} segments ($((WAL_BYTES / 1000000)) MB) through a pipe"
kib() { awk -v k="$(cat "$RESULTS/$1")" 'BEGIN { printf "%.1f", k / 1024 }'; }
printf '%-16s %10s %10s\n' command 16MB "$((WAL_BYTES / 1000000))MB"
for name in "${NAMES[@]}"; do
    printf '%-16s %10s %10s\n' "$name -9" "$(kib rss-seg-c.$name)" "$(kib rss-all-c.$name)"
done
for dname in bzip2-d:ours lbzip2-d:ours ours-d:ours; do
    printf '%-16s %10s %10s\n' "$dname" "$(kib rss-seg-d.$dname)" "$(kib rss-all-d.$dname)"
done
echo
echo "raw timings: $RESULTS; outputs: $OUT"
