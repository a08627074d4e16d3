#!/usr/bin/env bash
# The bare job queue beside pgbench, on the same machine in the same run,
# so the queue's jobs/s can be read against what this PostgreSQL does.
#
#   scripts/bench-queue.sh            # 20 000 no-op jobs
#   N=50000 scripts/bench-queue.sh
#
# Uses two databases of its own on the local PostgreSQL (PGURL, default
# postgres://postgres@127.0.0.1:5432): switchboard_bench_queue (emptied
# each run) and switchboard_pgbench (pgbench's tables, scale 10).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20000}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
PGBENCH_DB=switchboard_pgbench

echo "== machine: $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --locked -p switchboard-worker --example queue_bench

echo "== pgbench (TPC-B-like, 8 clients, 2 threads, 20 s, scale 10)"
psql "$PGURL/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$PGBENCH_DB'" | grep -q 1 \
  || psql "$PGURL/postgres" -qc "CREATE DATABASE $PGBENCH_DB"
pgbench -q -i -s 10 "$PGURL/$PGBENCH_DB" >/dev/null 2>&1
pgbench -c 8 -j 2 -T 20 "$PGURL/$PGBENCH_DB" 2>/dev/null | grep -E '^(tps|latency average)'

echo "== the queue ($N no-op jobs)"
DATABASE_URL="$PGURL/switchboard_bench_queue" RUST_LOG=warn \
  target/release/examples/queue_bench "$N"
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
