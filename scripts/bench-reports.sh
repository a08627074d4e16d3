#!/usr/bin/env bash
# Report latency and throughput on a large seeded database: seeds (once)
# 1 000 000 calls, 200 000 messages and 10 000 voicemails over the seed's
# 90 days, starts `switchboard all` (release), logs in as the demo admin and
# runs wrk against each report for DURATION seconds with CONNECTIONS
# connections, printing requests/s and p50/p95/p99.
#
#   scripts/bench-reports.sh            # CONNECTIONS=16 DURATION=15
#
# Needs PostgreSQL and Redis on their default ports, wrk, python3, curl.
# The database is kept between runs (seeding takes minutes); drop it with
# `dropdb -h 127.0.0.1 -U postgres switchboard_bench_reports`.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=switchboard_bench_reports
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-15}
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB}
export SWITCHBOARD_REDIS_PREFIX=bench-reports-$$
export SWITCHBOARD_API_ADDR=127.0.0.1:18190 SWITCHBOARD_REALTIME_ADDR=127.0.0.1:18191 SWITCHBOARD_WORKER_ADDR=127.0.0.1:18192
export SWITCHBOARD_PUBLIC_URL=http://127.0.0.1:18190
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh
build_release
"$BIN" migrate >/dev/null
SEEDED=$("$BIN" seed --quiet --customers 100000 --calls 1000000 --messages 200000 --voicemails 10000)
echo "${SEEDED%%$'\n'*}"
serve all
wait_ready http://127.0.0.1:18190
TOKEN=$(login http://127.0.0.1:18190 admin@acme.example)
# The worker's first maintenance pass rolls what the seed could not yet.
for _ in $(seq 40); do
  [ "$(psql -qtA -h 127.0.0.1 -U postgres -d $DB -c \
    "SELECT coalesce(min(rolled_through) > now() - interval '2 hours', false) FROM report_rollup_state")" = t ] && break
  sleep 0.5
done
psql -qtA -h 127.0.0.1 -U postgres -d $DB -c \
  "SELECT 'calls ' || count(*) || ', rolled through ' || coalesce((SELECT min(rolled_through)::text FROM report_rollup_state), 'never') FROM calls"
LUA=$(mktemp --suffix .lua)
cat > "$LUA" <<LUA
wrk.headers["authorization"] = "Bearer $TOKEN"
done = function(summary, latency, requests)
  io.write(string.format("  %8.1f req/s  p50 %7.2f ms  p95 %7.2f ms  p99 %7.2f ms  errors %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ago() { date -u -d "$1 ago" +%Y-%m-%dT%H:%M:%SZ; }
for report in \
  "summary 24 h hourly|/v1/reports/summary?granularity=hour" \
  "summary 7 d daily|/v1/reports/summary?granularity=day&from=$(ago '7 days')&to=$NOW" \
  "summary 30 d daily|/v1/reports/summary?granularity=day" \
  "summary 31 d hourly|/v1/reports/summary?granularity=hour&from=$(ago '31 days')&to=$NOW" \
  "summary 90 d daily|/v1/reports/summary?granularity=day&from=$(ago '90 days')&to=$NOW" \
  "agents 24 h|/v1/reports/agents" \
  "agents 30 d|/v1/reports/agents?from=$(ago '30 days')&to=$NOW" \
  "call records 24 h, 50|/v1/reports/calls?limit=50"; do
  echo "${report%%|*}"
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 20s -s "$LUA" "http://127.0.0.1:18190${report#*|}" | tail -1
done
rm -f "$LUA"
