#!/usr/bin/env bash
# What one request costs in CPU: starts `switchboard api` (release) on a
# seeded database, drives each hot endpoint with wrk (one thread,
# CONNECTIONS connections, DURATION seconds) and reads the CPU that the API
# process, the database backends serving it and Redis spent meanwhile from
# /proc, divided by the requests wrk completed. Prints one table row per
# endpoint: req/s, latency, and µs of CPU per request for each process.
#
#   scripts/cpu-per-request.sh          # CONNECTIONS=16 DURATION=8
#
# The API's column is what issue 17 calls "stack CPU per request". wrk
# itself runs on the same cores, so req/s is bounded by the machine, not by
# the API alone; the per-request CPU does not depend on that. Needs
# PostgreSQL and Redis on their default ports, wrk, python3, curl, psql.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${CPU_DB:-switchboard_cpu}
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-8}
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export SWITCHBOARD_REDIS_PREFIX=cpu-$$
export SWITCHBOARD_API_ADDR=127.0.0.1:18290
export SWITCHBOARD_PUBLIC_URL=http://127.0.0.1:18290
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh
build_release
"$BIN" migrate >/dev/null
if [ "$(psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c 'SELECT count(*) FROM customers')" = 0 ]; then
  "$BIN" seed --quiet >/dev/null
fi
serve api
API=$SERVED
wait_ready http://127.0.0.1:18290
TOKEN=$(login http://127.0.0.1:18290 agent01@acme.example)
PHONE=$(psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c \
  "SELECT c.phone FROM customers c JOIN tenants t ON t.id = c.tenant_id
   WHERE t.slug = 'acme' AND c.phone IS NOT NULL ORDER BY c.id LIMIT 1")
LUA=$(mktemp --suffix .lua)
trap 'stop_served; rm -f "$LUA"' EXIT
cat > "$LUA" <<LUA
wrk.headers["authorization"] = "Bearer $TOKEN"
done = function(summary, latency, requests)
  io.write(string.format("%d %d %.3f %.3f %.3f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end
LUA
TICK=$(getconf CLK_TCK)
# "pid ticks" (utime + stime) for each of the given processes still alive.
ticks() {
  local pid
  for pid in "$@"; do
    awk -v pid="$pid" '{print pid, $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true
  done
}
backends() {
  psql -qtA -h 127.0.0.1 -U postgres -d postgres -c \
    "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()"
}
read -ra REDIS <<< "$(pidof redis-server || true)"
# One line per process: "<kind> <pid> <ticks>", joined by ";".
snapshot() {
  { ticks "$API" | sed 's/^/api /'; ticks "${PG[@]}" | sed 's/^/pg /'
    ticks "${REDIS[@]}" | sed 's/^/redis /'; } | tr '\n' ';'
}
printf '| endpoint | req/s | p50 ms | p99 ms | errors | api µs/req | postgres µs/req | redis µs/req |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for endpoint in \
  "GET /health|/health" \
  "GET /v1/me|/v1/me" \
  "GET /v1/customers?phone=|/v1/customers?phone=${PHONE/+/%2B}" \
  "GET /v1/calls?limit=20|/v1/calls?limit=20"; do
  # Warm the pool (and any cache) first, so every backend is counted.
  wrk -t1 -c"$CONNECTIONS" -d2s -s "$LUA" "http://127.0.0.1:18290${endpoint#*|}" >/dev/null
  mapfile -t PG < <(backends)
  before=$(snapshot)
  read -r n errors p50 p99 secs < <(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$LUA" \
    "http://127.0.0.1:18290${endpoint#*|}" | tail -1)
  after=$(snapshot)
  python3 - "$endpoint" "$n" "$errors" "$p50" "$p99" "$secs" "$TICK" "$before" "$after" <<'PY'
import sys
name, n, errors, p50, p99, secs, tick, before, after = sys.argv[1:]
n, tick = int(n), int(tick)
snap = lambda s: {tuple(l.split()[:2]): int(l.split()[2]) for l in s.split(";") if l.strip()}
b, a = snap(before), snap(after)
# Only processes alive at both ends count (a backend may come or go).
cpu = lambda kind: sum(a[k] - b[k] for k in a if k in b and k[0] == kind)
per = lambda kind: cpu(kind) / tick * 1e6 / max(n, 1)
print(f"| {name.split('|')[0]} | {n / float(secs):,.0f} | {float(p50):.2f} | {float(p99):.2f} "
      f"| {errors} | {per('api'):.0f} | {per('pg'):.0f} | {per('redis'):.0f} |")
PY
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; wrk -t1 -c$CONNECTIONS -d${DURATION}s"
