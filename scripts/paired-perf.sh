#!/usr/bin/env bash
# The paired comparison: the previous good revision (A) and the candidate
# (B, this checkout) built and run in the same job on the same machine,
# interleaved A B B A A B … (each run on a fresh stack, which the load
# suite starts itself), then the candidate's runs, pooled, judged against
# A's runs made right there (`switchboard-load --save-baseline A.json
# --record A-*/summary.json`, then `--baseline A.json --judge
# B-*/summary.json`, both by B's binary). Stored baselines only compare
# like with like on the hardware they were recorded on; this needs no
# stored baseline at all.
#
#   BASE_REV=origin/main scripts/paired-perf.sh              # nightly: last night's good build
#   BASE_REV=HEAD~1 ROUNDS=3 PROFILE=average scripts/paired-perf.sh
#
# Environment (all optional):
#   BASE_REV        the previous good revision (default HEAD~1); when its
#                   tree is the candidate's, the candidate's build is reused
#   ROUNDS          runs of each side (default 3, at most 5: what a
#                   baseline file keeps)
#   PROFILE, TIER   as scripts/nightly-perf.sh (default nightly, seed)
#   LOAD_ARGS       extra switchboard-load arguments, split on spaces
#   CANDIDATE_ENV   extra environment for B's runs only, split on spaces
#                   (e.g. SWITCHBOARD_FAULT_LATENCY_MS=0.4: how the
#                   detection rate in BASELINES.md was measured)
#   REPORT_ROOT     where run directories go (default target/loadtest)
#   RUN_ID          this comparison's directory (default paired-<UTC time>)
#   CARGO_PROFILE   release (default) or dev, or any cargo profile
#   SKIP_BUILD      true: use target/paired/{A,B}/switchboard-load as built
#   DATABASE_URL    the PostgreSQL server; A and B each get a database of
#                   their own (<name>_a, <name>_b): their migrations may differ
#   REDIS_URL       the Redis server (A and B use their own key prefixes)
#   GITHUB_STEP_SUMMARY  set by GitHub Actions: the verdict is appended there
#
# Exit codes: 0 no regression, 1 a run failed or did not verify, 2 usage,
# 3 a threshold breached in the candidate's runs, 4 the candidate regressed
# against A.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_REV=${BASE_REV:-HEAD~1}
ROUNDS=${ROUNDS:-3}
PROFILE=${PROFILE:-nightly}
TIER=${TIER:-seed}
REPORT_ROOT=${REPORT_ROOT:-target/loadtest}
RUN_ID=${RUN_ID:-paired-$(date -u +%Y%m%dT%H%M%SZ)}
SKIP_BUILD=${SKIP_BUILD:-false}
CARGO_PROFILE=${CARGO_PROFILE:-release}
DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/switchboard_perf}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export SQLX_OFFLINE=true

log() { printf '\n== %s\n' "$*"; }

if ! [[ "$ROUNDS" =~ ^[1-5]$ ]]; then
  echo "paired-perf: ROUNDS must be 1 to 5 (got $ROUNDS)" >&2
  exit 2
fi
if ! base_commit=$(git rev-parse --verify --quiet "$BASE_REV^{commit}"); then
  echo "paired-perf: BASE_REV $BASE_REV is not a revision here (fetch it first)" >&2
  exit 2
fi

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
case "$CARGO_PROFILE" in
  dev | test) built=$target_dir/debug/switchboard-load ;;
  bench) built=$target_dir/release/switchboard-load ;;
  *) built=$target_dir/$CARGO_PROFILE/switchboard-load ;;
esac
bins=$target_dir/paired
dir="$REPORT_ROOT/$RUN_ID"
mkdir -p "$bins/A" "$bins/B" "$dir"

# The databases: the one in DATABASE_URL with _a and _b appended.
db_base=${DATABASE_URL%%\?*}
db_query=${DATABASE_URL#"$db_base"}
db_for() { printf '%s_%s%s' "$db_base" "$1" "$db_query"; }

if [ "$SKIP_BUILD" != true ]; then
  log "build the candidate ($(git rev-parse --short HEAD))"
  cargo build --profile "$CARGO_PROFILE" --locked -p switchboard-load
  cp "$built" "$bins/B/"
  if [ "$(git rev-parse "$base_commit^{tree}")" = "$(git rev-parse 'HEAD^{tree}')" ] \
    && git diff --quiet HEAD -- crates loadtests Cargo.toml Cargo.lock; then
    log "A ($BASE_REV) has the candidate's tree: reusing its build"
    cp "$built" "$bins/A/"
  else
    log "build A ($BASE_REV = $(git rev-parse --short "$base_commit"))"
    src="$bins/A-src"
    git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
    git worktree prune
    git worktree add --detach "$src" "$base_commit"
    # Its own checkout, the shared target directory (dependencies are
    # built once); its binary is copied out before anything overwrites it.
    (cd "$src" && CARGO_TARGET_DIR="$target_dir" \
      cargo build --profile "$CARGO_PROFILE" --locked -p switchboard-load)
    cp "$built" "$bins/A/"
    git worktree remove --force "$src"
    # The candidate's own binary back in place for anything run after this.
    cp "$bins/B/switchboard-load" "$built"
  fi
fi
for side in A B; do
  if [ ! -x "$bins/$side/switchboard-load" ]; then
    echo "paired-perf: $bins/$side/switchboard-load is missing (unset SKIP_BUILD)" >&2
    exit 1
  fi
done

args=(--profile "$PROFILE" --tier "$TIER")
if [ -n "${LOAD_ARGS:-}" ]; then
  read -r -a extra <<<"$LOAD_ARGS"
  args+=("${extra[@]}")
fi
candidate_env=()
if [ -n "${CANDIDATE_ENV:-}" ]; then
  read -r -a candidate_env <<<"$CANDIDATE_ENV"
fi

failed=0
breached=0
run_side() { # side round
  local side=$1 round=$2 lower status
  lower=$(tr 'AB' 'ab' <<<"$side")
  local env=(DATABASE_URL="$(db_for "$lower")" SWITCHBOARD_REDIS_PREFIX="paired-$lower")
  if [ "$side" = B ]; then
    env+=("${candidate_env[@]}")
  fi
  log "round $round: $side"
  set +e
  env "${env[@]}" "$bins/$side/switchboard-load" "${args[@]}" \
    --report-dir "$dir/$side-$round" >"$dir/$side-$round.log" 2>&1
  status=$?
  set -e
  grep -E '^Exit code|all HTTP' "$dir/$side-$round.log" || true
  case "$status" in
    0 | 4) ;;
    3) if [ "$side" = B ]; then breached=1; fi ;;
    *) echo "paired-perf: $side run $round exited $status (see $dir/$side-$round.log)" >&2
       failed=1 ;;
  esac
}

rm -f "$dir/A.json"
for round in $(seq 1 "$ROUNDS"); do
  # A B, then B A: a drift of the machine over the job falls on both sides.
  if [ $((round % 2)) = 1 ]; then order=(A B); else order=(B A); fi
  for side in "${order[@]}"; do
    run_side "$side" "$round"
  done
done

# A's runs are recorded by B's binary, so what is compared is the
# candidate's rule whatever A's revision stored.
if [ "$failed" = 0 ]; then
  "$bins/B/switchboard-load" --save-baseline "$dir/A.json" --record "$dir"/A-*/summary.json \
    || failed=1
fi
if [ "$failed" = 1 ] || [ ! -f "$dir/A.json" ]; then
  verdict="failed: a run did not complete (see the logs in $dir)"
  status=1
else
  log "judge B's runs against A's"
  set +e
  "$bins/B/switchboard-load" --baseline "$dir/A.json" --judge "$dir"/B-*/summary.json \
    | tee "$dir/judgement.md"
  status=${PIPESTATUS[0]}
  set -e
  case "$status" in
    0) if [ "$breached" = 1 ]; then status=3; verdict="no regression against A, but a threshold was breached";
       else verdict="no regression against A"; fi ;;
    4) verdict="REGRESSION against A" ;;
    *) verdict="the judgement failed (exit $status)" ;;
  esac
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "# Paired comparison: \`$(git rev-parse --short HEAD)\` against \`$BASE_REV\` ($(git rev-parse --short "$base_commit"))"
    echo
    echo "Profile \`$PROFILE\`, $ROUNDS run(s) each, interleaved: **$verdict** (exit $status)."
    if [ -f "$dir/judgement.md" ]; then
      echo
      cat "$dir/judgement.md"
    fi
  } >>"$GITHUB_STEP_SUMMARY"
fi
log "paired-perf: $verdict (exit $status); reports in $dir"
exit "$status"
