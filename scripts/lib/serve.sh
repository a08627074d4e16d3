# shellcheck shell=bash
# Shared by the benchmark scripts (sourced): run the release binary as a
# background service that stops when the script exits, leaving no Redis keys
# behind; wait until services are ready; log in as a demo user.
# Expects SWITCHBOARD_REDIS_PREFIX to be set.

# build_release: the release binary in BIN, built when missing; it logs
# warnings only, as every benchmark runs it.
build_release() {
  BIN=target/release/switchboard
  export RUST_LOG=warn
  [ -x "$BIN" ] || cargo build --release -p switchboard
}

# serve CMD...: runs "$BIN" CMD... in the background until the script exits;
# its pid is in SERVED.
serve() {
  "$BIN" "$@" &
  SERVED=$!
  trap stop_served EXIT
}

stop_served() {
  kill "$SERVED" 2>/dev/null || true
  wait "$SERVED" 2>/dev/null || true
  # Leave no keys (events, presence) behind in Redis.
  redis-cli --scan --pattern "$SWITCHBOARD_REDIS_PREFIX:*" | xargs -r -n 500 redis-cli unlink >/dev/null || true
}

# wait_ready BASE...: until every base URL answers /ready 200 (20 s at most)
# and the served process is still running (one that exited, its port taken,
# must not be mistaken for whatever else answers there).
wait_ready() {
  local ready base
  for _ in $(seq 100); do
    if [ -n "${SERVED:-}" ] && ! kill -0 "$SERVED" 2>/dev/null; then
      echo "switchboard exited before it was ready (is its port taken?)" >&2
      return 1
    fi
    ready=1
    for base in "$@"; do curl -sf "$base/ready" >/dev/null || ready=; done
    if [ -n "$ready" ]; then
      # A stale instance may have answered: ours fails its bind within moments.
      sleep 0.5
      if [ -z "${SERVED:-}" ] || kill -0 "$SERVED" 2>/dev/null; then return 0; fi
    fi
    sleep 0.2
  done
  echo "not ready within 20 s: $*" >&2
  return 1
}

# login BASE EMAIL: prints the demo user's access token.
login() {
  curl -sf "$1/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"switchboard-demo\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
