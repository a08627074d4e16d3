#!/usr/bin/env bash
# Property-based fuzzing of the whole HTTP API against its own OpenAPI
# document (schemathesis, from PyPI). Starts a throwaway stack itself: a
# fresh database (migrated, seeded small), `switchboard api` on a free port,
# then runs every operation through the examples, coverage, fuzzing and
# stateful phases with all checks:
#   1. as an agent   (token from POST /v1/auth/login, demo credentials),
#      then POST /v1/auth/logout alone (it revokes the token)
#   2. the same as an admin
#   3. the carrier webhooks with valid X-Twilio-Signature (a hook signs them)
#   4. the carrier webhooks with whatever signature was generated (must be 4xx)
# Any failure of any kind fails the script (exit 1).
#
#   scripts/fuzz-api.sh                                  # CI budget, fixed seed
#   scripts/fuzz-api.sh --max-time 600 --seed "$RANDOM$RANDOM"  # a longer hunt
#
# Options:
#   --max-time SECONDS  schemathesis budget, split across the runs (default 170:
#                       about 4 minutes in all with the stack's start)
#   --seed N            schemathesis seed (default 20261201)
#   --workers N         schemathesis workers per run (default 1)
#   --no-build          use target/debug/switchboard as it is
# Environment: DATABASE_URL's server is used (database FUZZ_DATABASE, default
# switchboard_fuzz, is dropped and recreated), REDIS_URL (keys under a prefix
# of their own), CARGO_TARGET_DIR, SWITCHBOARD_BIN (default the debug build).
# Reports: target/fuzz/<seed>/.
set -euo pipefail
cd "$(dirname "$0")/.."

max_time=170
seed=20261201
# One worker: CPython 3.11's ast.parse is not thread-safe ("AST constructor
# recursion depth mismatch" inside hypothesis with two), and CI has 2 cores.
workers=1
build=true
while [ $# -gt 0 ]; do
  case "$1" in
    --max-time) max_time=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --no-build) build=false; shift ;;
    *) echo "fuzz-api: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf '\n== %s\n' "$*"; }

if ! command -v st >/dev/null 2>&1 || ! python3 -c 'import schemathesis' 2>/dev/null; then
  log "installing schemathesis"
  python3 -m pip install -q --disable-pip-version-check 'schemathesis>=4.32,<5' 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages 'schemathesis>=4.32,<5'
fi

target_dir=${CARGO_TARGET_DIR:-target}
bin=${SWITCHBOARD_BIN:-$target_dir/debug/switchboard}
if [ "$build" = true ]; then
  log "cargo build -p switchboard (debug)"
  cargo build --locked -p switchboard
fi

server_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/switchboard}
server_url=${server_url%/*}
db_name=${FUZZ_DATABASE:-switchboard_fuzz}
export DATABASE_URL="$server_url/$db_name"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export SWITCHBOARD_REDIS_PREFIX="fuzz-$$"
export SWITCHBOARD_ENV=test
report_root="$target_dir/fuzz/$seed"
mkdir -p "$report_root"

log "fresh database $db_name: migrate and seed"
psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)"
RUST_LOG=error "$bin" migrate
RUST_LOG=error "$bin" seed --quiet --customers 200 --calls 400 --messages 400 --voicemails 40

api_pid=
cleanup() {
  if [ -n "$api_pid" ] && kill -0 "$api_pid" 2>/dev/null; then
    kill "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  redis-cli -u "$REDIS_URL" --scan --pattern "$SWITCHBOARD_REDIS_PREFIX*" 2>/dev/null \
    | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Ports are picked just before the API binds them, after migrating and
# seeding (seconds): a port Python found free can be taken by another socket
# until it is bound. One taken anyway makes `switchboard api` exit naming
# the address, and the wait below prints that and fails.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
base="http://127.0.0.1:$api_port"
export SWITCHBOARD_API_ADDR="127.0.0.1:$api_port"
realtime_port=$(free_port)
worker_port=$(free_port)
export SWITCHBOARD_REALTIME_ADDR="127.0.0.1:$realtime_port"
export SWITCHBOARD_WORKER_ADDR="127.0.0.1:$worker_port"
export SWITCHBOARD_PUBLIC_URL="$base"
log "starting switchboard api on $base"
RUST_LOG=${RUST_LOG:-warn} "$bin" api >"$report_root/api.log" 2>&1 &
api_pid=$!
# Each probe is bounded: a port taken by something that never answers would
# otherwise hold curl, and this loop, for as long as that lives.
deadline=$((SECONDS + 30))
until curl -fsS --max-time 2 "$base/health" >/dev/null 2>&1; do
  kill -0 "$api_pid" 2>/dev/null || { cat "$report_root/api.log" >&2; exit 1; }
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "fuzz-api: switchboard api did not answer $base/health within 30 s" >&2
    cat "$report_root/api.log" >&2
    exit 1
  fi
  sleep 0.5
done

login() {
  curl -fsS "$base/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"switchboard-demo\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$PWD/scripts/fuzz${PYTHONPATH:+:$PYTHONPATH}"
export FUZZ_BASE_URL="$base"
# The budget: 40% each for the two roles, 10% each for the webhook runs.
role_time=$(( max_time * 4 / 10 )); hook_time=$(( max_time / 10 ))
[ "$role_time" -ge 1 ] || role_time=1
[ "$hook_time" -ge 1 ] || hook_time=1
# shellcheck disable=SC2054 # commas separate schemathesis's list values
common=(--checks all --phases examples,coverage,fuzzing,stateful --seed "$seed"
  --workers "$workers" --suppress-health-check all --request-timeout 30
  --no-color --report junit,ndjson)
failed=0

run() { # name, budget, extra args...
  local name=$1 budget=$2
  shift 2
  log "schemathesis: $name (max ${budget}s, seed $seed)"
  local status=0
  st run "$base/openapi.json" "${common[@]}" --max-time "$budget" \
    --report-dir "$report_root/$name" "$@" || status=$?
  if [ "$status" != 0 ]; then
    echo "fuzz-api: $name FAILED (exit $status); reports in $report_root/$name" >&2
    failed=1
  fi
}

for role in agent admin; do
  email=agent01@acme.example
  [ "$role" = admin ] && email=admin@acme.example
  token=$(login "$email")
  # Logout revokes the token it is given, so it runs last, alone.
  run "$role" "$role_time" -H "Authorization: Bearer $token" \
    --exclude-path-regex '^/webhooks/carrier/' --exclude-path /v1/auth/logout
  run "$role-logout" 2 -H "Authorization: Bearer $token" --include-path /v1/auth/logout
done
# The carrier's forms are Twilio's contract, loosely typed (every value is
# text; the voice callbacks are documented as a bare form): the runs look for
# 5xx, undocumented statuses and bodies, and a bad signature that is not 4xx,
# not for the exactness of each parameter's format.
# shellcheck disable=SC2054 # commas separate schemathesis's list values
webhook_checks=(--exclude-checks positive_data_acceptance,negative_data_rejection
  --include-path-regex '^/webhooks/carrier/')
FUZZ_WEBHOOK_SIGNING=valid run webhooks-signed "$hook_time" "${webhook_checks[@]}"
FUZZ_WEBHOOK_SIGNING=bad run webhooks-unsigned "$hook_time" "${webhook_checks[@]}"

if ! kill -0 "$api_pid" 2>/dev/null; then
  echo "fuzz-api: the API process died during the run" >&2
  failed=1
fi
if grep -q 'panicked' "$report_root/api.log"; then
  echo "fuzz-api: the API log holds a panic (see $report_root/api.log)" >&2
  failed=1
fi
if [ "$failed" != 0 ]; then
  log "fuzz-api: FAILED (seed $seed)"
  exit 1
fi
log "fuzz-api: passed (seed $seed, ${max_time}s budget)"
