#!/usr/bin/env bash
# Our Socket.IO client against rust_socketio under the fan-out load (issue
# 16): starts `switchboard all` (release) on a seeded database, then for
# each rate runs sio-bench with each client in turn (ROUNDS times,
# alternating), SUBSCRIBERS sockets of tenant acme, SECONDS of publishing.
# Prints one JSON line a run (delivery, latency, the bench's CPU per
# delivery). Both clients run in this one bench process, one at a time, on
# the same cores as the server: compare them with each other, not with the
# load suite's figures.
#
#   tools/sio-bench/run.sh                 # RATES="150 500" SUBSCRIBERS=200 SECONDS=20 ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${RATES:-150 500}
SUBSCRIBERS=${SUBSCRIBERS:-200}
SECONDS_EACH=${SECONDS:-20}
ROUNDS=${ROUNDS:-2}
DB=${SIO_BENCH_DB:-switchboard_cpu}
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export SWITCHBOARD_REDIS_PREFIX=siobench-$$
export SWITCHBOARD_API_ADDR=127.0.0.1:18390
export SWITCHBOARD_REALTIME_ADDR=127.0.0.1:18391
export SWITCHBOARD_WORKER_ADDR=127.0.0.1:18392
export SWITCHBOARD_PUBLIC_URL=http://127.0.0.1:18390
export RUST_LOG=warn
BIN=${SWITCHBOARD_BIN:-target/release/switchboard}
BENCH=${CARGO_TARGET_DIR:-tools/sio-bench/target}/release/sio-bench
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh
[ -x "$BIN" ] || cargo build --release -p switchboard
[ -x "$BENCH" ] || cargo build --release --manifest-path tools/sio-bench/Cargo.toml
"$BIN" migrate >/dev/null
if [ "$(psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c 'SELECT count(*) FROM customers')" = 0 ]; then
  "$BIN" seed --quiet >/dev/null
fi
serve all
wait_ready http://127.0.0.1:18390 http://127.0.0.1:18391
TOKEN=$(login http://127.0.0.1:18390 agent01@acme.example)
TENANT=$(curl -sf http://127.0.0.1:18390/v1/me -H "authorization: Bearer $TOKEN" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["tenant"]["id"])')
for rate in $RATES; do
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order=(ours rust_socketio); else order=(rust_socketio ours); fi
    for client in "${order[@]}"; do
      echo "# $client, rate $rate, round $round, load $(cut -d' ' -f1-3 /proc/loadavg)"
      "$BENCH" "$client" http://127.0.0.1:18391 "$TOKEN" "$TENANT" "$SUBSCRIBERS" "$rate" "$SECONDS_EACH"
    done
  done
done
