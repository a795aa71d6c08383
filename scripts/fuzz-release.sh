#!/usr/bin/env bash
# Runs every fuzz target of the project for a fixed number of executions (10 million each by
# default): the check made once per release, where scripts/test.sh keeps 20-second runs.
#
# Usage: scripts/fuzz-release.sh [--runs N] [--jobs J] [--workers W] [--no-trace-compares]
#                                [TARGET...]
#
#   --runs N   executions per target (default 10000000)
#   --jobs J   targets fuzzed at once (default 1; each uses one core per worker)
#   --workers W
#              libFuzzer processes per target (default 1), each running its share of the
#              N executions on the same corpus: one target's 10 million in 1/W of the time
#              on W idle cores (each worker adds what it finds to the corpus; the others see
#              it from their next start)
#   --no-cmin  keep the corpus as it grew (by default each target's corpus is minimized after
#              its run: the inputs that keep every feature found, often a fifth of them, so
#              the 20-second runs of scripts/test.sh fuzz rather than spend them loading)
#   --no-trace-compares
#              build without compare tracing: ~1.8x the executions per second for the
#              observer, with coarser guidance (the table says which build ran)
#   TARGET     only these targets (default: every target of every fuzz crate)
#
# Every fuzz crate (a `fuzz/` folder with a Cargo.toml under a top-level crate) is found; each
# target continues from and adds to the corpus kept in ${SLUICE_CACHE:-$HOME/.cache/sluice}/
# fuzz-corpus/<target>, seeded from the crate's fuzz/seeds/<target>. Prints, per target, the
# executions, seconds, executions per second, coverage and corpus size, and a table at the end
# (also written to $SLUICE_CACHE/fuzz-release.txt). Exits non-zero on the first crash, naming
# the input libFuzzer saved.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"

RUNS=10000000
JOBS=1
WORKERS=1
CMIN=1
ONLY=()
TRACE=()
TARGET_DIR="$SLUICE_CACHE/fuzz-target"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --no-cmin) CMIN=0; shift ;;
    --no-trace-compares) TRACE=(--no-trace-compares); TARGET_DIR="$SLUICE_CACHE/fuzz-target-notc"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 64 ;;
    *) ONLY+=("$1"); shift ;;
  esac
done

command -v cargo-fuzz >/dev/null 2>&1 || [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]] \
  || { echo "cargo-fuzz not found; scripts/setup.sh --only fuzz installs it" >&2; exit 1; }

# (crate dir, target) pairs.
pairs=()
for manifest in */fuzz/Cargo.toml; do
  crate="${manifest%%/fuzz/Cargo.toml}"
  while read -r target; do
    [[ -n "$target" ]] || continue
    if [[ ${#ONLY[@]} -gt 0 ]]; then
      keep=0
      for t in "${ONLY[@]}"; do [[ "$t" == "$target" ]] && keep=1; done
      [[ $keep == 1 ]] || continue
    fi
    pairs+=("$crate $target")
  done < <(cd "$crate" && cargo fuzz list 2>/dev/null)
done
[[ ${#pairs[@]} -gt 0 ]] || { echo "no fuzz target matched" >&2; exit 64; }
[[ "$WORKERS" =~ ^[1-9][0-9]*$ && "$RUNS" =~ ^[1-9][0-9]*$ ]] \
  || { echo "--runs and --workers take a positive number" >&2; exit 64; }

summary="$SLUICE_CACHE/fuzz-release.txt"
results_dir="$(mktemp -d)"
trap 'rm -rf "$results_dir"' EXIT

fuzz_one() {
  local crate="$1" target="$2"
  local corpus="$SLUICE_CACHE/fuzz-corpus/$target"
  local log="$SLUICE_CACHE/fuzz-release-$target.log"
  mkdir -p "$corpus"
  local seeds=()
  [[ -d "$crate/fuzz/seeds/$target" ]] && seeds+=("fuzz/seeds/$target")
  echo "fuzz $target: $RUNS executions, $WORKERS worker(s) (log: $log) ..."
  local started=$SECONDS
  # Built once, so the workers do not queue on the build lock.
  if ! (cd "$crate" && cargo fuzz build -s none "${TRACE[@]}" "$target" --target-dir "$TARGET_DIR") \
      >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz $target: build FAILED"
    return 1
  fi
  local w pids=() logs=() share failed_worker=0
  for ((w = 0; w < WORKERS; w++)); do
    share=$((RUNS / WORKERS + (w < RUNS % WORKERS ? 1 : 0)))
    logs+=("$log.$w")
    (cd "$crate" && cargo fuzz run -s none "${TRACE[@]}" "$target" --target-dir "$TARGET_DIR" \
        "$corpus" "${seeds[@]}" -- -runs="$share" -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -print_final_stats=1) >"$log.$w" 2>&1 &
    pids+=($!)
  done
  for w in "${!pids[@]}"; do
    wait "${pids[$w]}" || { failed_worker=1; tail -n 40 "${logs[$w]}"; }
  done
  cat "${logs[@]}" >>"$log" && rm -f "${logs[@]}"
  if [[ $failed_worker == 1 ]]; then
    echo "fuzz $target: FAILED (crash input under $crate/fuzz/artifacts/$target)"
    return 1
  fi
  local secs=$((SECONDS - started)) done_runs cov
  if [[ $CMIN == 1 ]]; then
    local before
    before="$(find "$corpus" -type f | wc -l)"
    if ! (cd "$crate" && cargo fuzz cmin -s none "${TRACE[@]}" "$target" "$corpus" \
          --target-dir "$TARGET_DIR") >>"$log" 2>&1; then
      tail -n 20 "$log"
      echo "fuzz $target: minimizing the corpus FAILED"
      return 1
    fi
    echo "fuzz $target: corpus minimized, $before -> $(find "$corpus" -type f | wc -l) inputs"
  fi
  # Every worker's executions; the widest coverage a worker reached.
  done_runs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | awk '{ s += $1 } END { print s }')"
  cov="$(grep -o 'cov: [0-9]*' "$log" | grep -o '[0-9]*' | sort -n | tail -1 || echo '?')"
  local files
  files="$(find "$corpus" -type f | wc -l)"
  local rate=$(( ${done_runs:-0} / (secs > 0 ? secs : 1) ))
  printf '%-18s %12s %8s %10s %8s %8s\n' "$target" "${done_runs:-?}" "$secs" "$rate" "$cov" "$files" \
    > "$results_dir/$target"
  echo "fuzz $target: ${done_runs:-?} runs in ${secs} s (${rate}/s), coverage $cov, corpus $files inputs"
}

failed=0
running=0
for pair in "${pairs[@]}"; do
  # shellcheck disable=SC2086
  fuzz_one $pair &
  running=$((running + 1))
  if [[ $running -ge $JOBS ]]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [[ $running -gt 0 ]]; do wait -n || failed=1; running=$((running - 1)); done

{
  echo "# fuzz-release $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD) runs=$RUNS workers=$WORKERS${TRACE[*]:+ ${TRACE[*]}}"
  printf '%-18s %12s %8s %10s %8s %8s\n' target executions seconds 'exec/s' coverage corpus
  cat "$results_dir"/* 2>/dev/null || true
} | tee "$summary"
exit $failed
