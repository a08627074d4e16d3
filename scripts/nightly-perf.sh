#!/usr/bin/env bash
# The nightly performance run, every step of it: build, run the load suite
# (which migrates and seeds the database and starts api + realtime + worker
# itself), compare with the stored baseline for this machine class, publish
# the summary, and exit with the suite's status.
#
# .github/workflows/nightly-perf.yml runs exactly this script; it also runs
# unchanged on a developer's machine against local PostgreSQL and Redis:
#
#   PROFILE=smoke scripts/nightly-perf.sh                  # a few minutes
#   PROFILE=smoke CARGO_PROFILE=dev scripts/nightly-perf.sh  # reuse the debug build
#   RECORD_BASELINE=true scripts/nightly-perf.sh           # re-record this class's baseline
#
# Environment (all optional):
#   PROFILE           load profile (default nightly)
#   TIER              threshold tier: seed (default: the seeds' own numbers,
#                     which this machine class meets) or goal (ours)
#   BASELINE_CLASS    baseline file loadtests/baselines/<class>.json (compared only
#                     when it holds this run's profile and tier)
#                     (default local-<cores>core; CI sets github-ubuntu-latest-4core)
#   RECORD_BASELINE   true: --save-baseline to that file instead of comparing
#   CARGO_PROFILE     release (default) or dev, or any cargo profile
#   REPORT_ROOT       where run directories go (default target/loadtest)
#   RUN_ID            run directory name (default nightly-<UTC time>-<profile>)
#   LOAD_ARGS         extra switchboard-load arguments, split on spaces
#                     (e.g. "--scenarios storm,reporting --tier seed")
#   SKIP_BUILD        true: use the binaries already built
#   DATABASE_URL, REDIS_URL   where the suite's stack keeps its data
#                     (default: database switchboard_perf on local PostgreSQL,
#                     local Redis)
#   GITHUB_STEP_SUMMARY       set by GitHub Actions: the summary is appended there
#
# Exit codes are the suite's: 0 pass, 1 error or failed verification,
# 2 usage (or the suite is not in this build), 3 threshold breach,
# 4 regression against the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-nightly}
TIER=${TIER:-seed}
CARGO_PROFILE=${CARGO_PROFILE:-release}
BASELINE_CLASS=${BASELINE_CLASS:-local-$(nproc)core}
RECORD_BASELINE=${RECORD_BASELINE:-false}
REPORT_ROOT=${REPORT_ROOT:-target/loadtest}
RUN_ID=${RUN_ID:-nightly-$(date -u +%Y%m%dT%H%M%SZ)-${PROFILE}}
SKIP_BUILD=${SKIP_BUILD:-false}
# A database of its own, so a nightly run never reseeds a developer's data.
export DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/switchboard_perf}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

log() { printf '\n== %s\n' "$*"; }

case "$CARGO_PROFILE" in
  dev | test) target_subdir=debug ;;
  bench) target_subdir=release ;;
  *) target_subdir=$CARGO_PROFILE ;;
esac
target_dir=${CARGO_TARGET_DIR:-target}
load_bin="$target_dir/$target_subdir/switchboard-load"
baseline_file="loadtests/baselines/${BASELINE_CLASS}.json"
report_dir="$REPORT_ROOT/$RUN_ID"

if [ "$SKIP_BUILD" != true ]; then
  log "cargo build --profile $CARGO_PROFILE (switchboard, switchboard-load)"
  cargo build --profile "$CARGO_PROFILE" --locked -p switchboard -p switchboard-load
fi
if [ ! -x "$load_bin" ]; then
  echo "nightly-perf: $load_bin is missing (build it, or unset SKIP_BUILD)" >&2
  exit 1
fi

args=(--profile "$PROFILE" --tier "$TIER" --report-dir "$report_dir")
baseline_note=
# A baseline compares like with like: what the class's file holds, if anything.
stored=
if [ -f "$baseline_file" ]; then
  stored=$(python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); print(b["profile"] + "/" + b["tier"])' "$baseline_file")
fi
if [ -n "$stored" ] && [ "$stored" != "$PROFILE/$TIER" ]; then
  if [ "$RECORD_BASELINE" = true ]; then
    echo "nightly-perf: $baseline_file holds $stored, not $PROFILE/$TIER: record into another BASELINE_CLASS" >&2
    exit 2
  fi
  baseline_note="\`$baseline_file\` holds profile/tier $stored, not this run's $PROFILE/$TIER: thresholds only, no regression check (record one under another BASELINE_CLASS)."
  echo "nightly-perf: warning: $baseline_note" >&2
elif [ "$RECORD_BASELINE" = true ]; then
  mkdir -p "$(dirname "$baseline_file")"
  args+=(--save-baseline "$baseline_file")
  baseline_note="Recording a new baseline: \`$baseline_file\`."
elif [ -f "$baseline_file" ]; then
  args+=(--baseline "$baseline_file")
  baseline_note="Compared with \`$baseline_file\`."
else
  baseline_note="No baseline \`$baseline_file\` for machine class \`$BASELINE_CLASS\`: thresholds only, no regression check. Record one with \`RECORD_BASELINE=true\` (the workflow's *record_baseline* input)."
  echo "nightly-perf: warning: $baseline_note" >&2
fi
if [ -n "${LOAD_ARGS:-}" ]; then
  # Deliberately split on spaces: several flags in one variable.
  read -r -a extra <<<"$LOAD_ARGS"
  args+=("${extra[@]}")
fi

mkdir -p "$report_dir"
log "switchboard-load ${args[*]}"
set +e
"$load_bin" "${args[@]}" 2>&1 | tee "$report_dir/run.log"
status=${PIPESTATUS[0]}
set -e

case "$status" in
  0) verdict="passed" ;;
  1) verdict="failed: an error, or the stack did not verify" ;;
  2) verdict="usage error" ;;
  3) verdict="failed: a threshold was breached" ;;
  4) verdict="failed: regression against the baseline" ;;
  *) verdict="failed with exit code $status" ;;
esac
if [ "$status" = 2 ] && grep -qi 'not yet available' "$report_dir/run.log"; then
  verdict="not run: switchboard-load is not yet available in this build (its issue has not landed)"
fi

summary="$report_dir/summary.md"
if [ ! -f "$summary" ]; then
  # The suite writes summary.md; without one (it failed early) say what happened.
  {
    echo "# Switchboard load test: $PROFILE"
    echo
    echo "The suite exited with code $status ($verdict) before writing a summary."
    echo "See \`run.log\` in the run's artifact."
  } >"$summary"
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    cat "$summary"
    echo
    echo "---"
    echo "Profile \`$PROFILE\`, machine class \`$BASELINE_CLASS\`, run \`$RUN_ID\`: **$verdict** (exit $status). $baseline_note"
  } >>"$GITHUB_STEP_SUMMARY"
fi

log "nightly-perf: $verdict (exit $status); reports in $report_dir"
echo "$baseline_note"
exit "$status"
