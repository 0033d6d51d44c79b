#!/usr/bin/env bash
# The analytics benchmark: READINGS (10,000,000) synthetic readings written as the collector
# writes the Parquet lake (1,000 devices, 5 metrics, every 30 s, 2-second windows: about 30,000
# files over ~17 hours up to five minutes ago), then
#   1. `devicehub analytics run --full`: the catalog, every silver hour and every gold day;
#   2. five more minutes of readings, and `devicehub analytics run` (the scheduled, incremental
#      run: only what changed);
# each timed with its peak RSS, under the shipped defaults (DuckDB 2 threads, 512 MB, spilling to
# analytics.work_dir). Prints the figures BENCHMARKS.md records.
#   READINGS=2000000 scripts/bench-analytics.sh
#   END=2026-12-01T17:59:00Z scripts/bench-analytics.sh   (the newest reading; default: now. The
#   incremental run rebuilds the newest hour whole, so it costs most at the end of an hour.)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

READINGS="${READINGS:-10000000}"
DB=devicehub_bench_analytics
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

require_cargo
[ -x /usr/bin/time ] || apt_install time
ensure_postgres
log "building devicehub and the lake generator (release)"
cargo build --release --locked -p devicehub --bin devicehub --example bench_lake
BIN="$CARGO_TARGET_DIR/release/devicehub"
GEN="$CARGO_TARGET_DIR/release/examples/bench_lake"

psql -w -h "$PG_HOST" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
export DEVICEHUB__DATABASE__URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
export DEVICEHUB__ARCHIVE__DIR="$WORK/archive"
export DEVICEHUB__ANALYTICS__WORK_DIR="$WORK/analytics"
export DEVICEHUB__LOG__LEVEL=warn
"$BIN" migrate >/dev/null

now=$(date -u -d "${END:-now}" +%s)
end_main=$(date -u -d "@$((now - 300))" +%Y-%m-%dT%H:%M:%SZ)
end_new=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
log "writing $READINGS readings up to $end_main"
out=$("$GEN" "$WORK/archive" "$READINGS" "$end_main")
echo "$out"
next=$(echo "$out" | sed -n 's/.*next journal number \([0-9]*\).*/\1/p')
du -sh "$WORK/archive/lake" | awk '{print "lake size: " $1}'

timed() {
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" | tail -1
  read -r secs kb < "$WORK/time"
  echo "  wall ${secs} s, peak RSS $((kb / 1024)) MB"
}

log "full rebuild: devicehub analytics run --full"
timed "$BIN" analytics run --full

log "writing the newest five minutes (50,000 readings up to $end_new)"
"$GEN" "$WORK/archive" 50000 "$end_new" "$next"

log "incremental: devicehub analytics run"
timed "$BIN" analytics run

log "nothing new: devicehub analytics run"
timed "$BIN" analytics run

psql -w -h "$PG_HOST" -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
