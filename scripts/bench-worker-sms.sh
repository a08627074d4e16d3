#!/usr/bin/env bash
# SMS throughput through the worker, end to end: campaigns accepted by the
# API → expanded → sms.send → carrier simulator → signed status webhooks →
# delivered. Starts `switchboard all` (release) on a fresh database, prints
# messages/s, accept→final latency percentiles (from the database) and the
# worker's queue wait / processing p95 (from its /metrics histograms).
#
#   scripts/bench-worker-sms.sh [campaigns=3] [recipients per campaign=10000]
#
# Needs PostgreSQL and Redis on their default ports, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
CAMPAIGNS=${1:-3}
PER=${2:-10000}
DB=switchboard_bench_sms
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB}
export SWITCHBOARD_REDIS_PREFIX=bench-sms-$$
export SWITCHBOARD_CARRIER=simulated
export SWITCHBOARD_CARRIER_SPEED=${SPEED:-1000}
export SWITCHBOARD_API_ADDR=127.0.0.1:18180 SWITCHBOARD_REALTIME_ADDR=127.0.0.1:18181 SWITCHBOARD_WORKER_ADDR=127.0.0.1:18182
export SWITCHBOARD_PUBLIC_URL=http://127.0.0.1:18180
export SWITCHBOARD_DB_MAX_CONNECTIONS=${DB_POOL:-20}
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh
build_release
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null
"$BIN" migrate >/dev/null
"$BIN" seed --customers 100 --calls 0 --messages 0 --voicemails 0 --quiet >/dev/null
psql -q -h 127.0.0.1 -U postgres -d $DB -c "UPDATE tenants SET sms_rate_per_second = 1000000" >/dev/null
serve all
wait_ready http://127.0.0.1:18182 http://127.0.0.1:18180
# A second seed changes nothing and prints the credentials again.
KEY=$("$BIN" seed --quiet 2>/dev/null | awk '/API key/ {print $3; exit}')
python3 - "$CAMPAIGNS" "$PER" "$KEY" "$DB" "$SWITCHBOARD_CARRIER_SPEED" <<'PY'
import json, subprocess, sys, time, urllib.request
campaigns, per, key, db = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
api = "http://127.0.0.1:18180"
def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
def sql(q):
    return subprocess.check_output(["psql", "-qtA", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", q]).decode().strip()
template = call("POST", "/v1/templates", {"name": "bench", "body": "Spring sale: 20% off everything until Sunday. Reply STOP to opt out."})
total = campaigns * per
start = time.time()
for c in range(campaigns):
    numbers = [f"+1{303 + c}555{i:04d}" for i in range(per)]
    call("POST", "/v1/campaigns", {"name": f"bench {c}", "template_id": template["id"], "recipients": {"phone_numbers": numbers}})
accepted = time.time() - start
while True:
    done = int(sql("SELECT count(*) FROM messages WHERE status IN ('delivered','undelivered','failed')"))
    if done >= total:
        break
    if time.time() - start > 600:
        sys.exit(f"only {done}/{total} finished in 600 s")
    time.sleep(0.25)
elapsed = time.time() - start
lat = sql("""SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 3) || ' ' ||
                    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY s)::numeric, 3) || ' ' ||
                    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY s)::numeric, 3)
             FROM (SELECT extract(epoch FROM updated_at - c.created_at) AS s
                   FROM messages m JOIN campaigns c ON c.id = m.campaign_id) x""").split()
by_status = sql("SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM messages GROUP BY 1 ORDER BY 1) s")
exact = sql("SELECT count(*) FILTER (WHERE version = 4) || '/' || count(*) FROM messages")
metrics = urllib.request.urlopen("http://127.0.0.1:18182/metrics").read().decode()
def p95(name, queue):
    buckets = []
    for line in metrics.splitlines():
        if line.startswith(name + "_bucket{") and f'queue="{queue}"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    merged = {}
    for le, n in buckets:
        merged[le] = merged.get(le, 0) + n
    items = sorted(merged.items())
    if not items or items[-1][1] == 0:
        return "n/a"
    target = 0.95 * items[-1][1]
    for le, n in items:
        if n >= target:
            return f"≤{le * 1000:g} ms"
print(f"{total} campaign messages ({campaigns} campaigns × {per}), carrier speed factor {sys.argv[5]}")
print(f"  campaigns accepted in {accepted:.2f} s; all final after {elapsed:.1f} s → {total / elapsed:.0f} messages/s end to end")
print(f"  campaign accept → final status: p50 {lat[0]} s, p95 {lat[1]} s, p99 {lat[2]} s")
print(f"  statuses: {by_status}; exactly one send each (version 4): {exact}")
for q in ["campaign.expand", "sms.send", "carrier.sim"]:
    print(f"  {q:16} queue wait p95 {p95('job_wait_seconds', q)}, processing p95 {p95('job_duration_seconds', q)}")
PY
