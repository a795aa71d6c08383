#!/usr/bin/env bash
# Several runs of ab-parallel.sh, each with its own broker and topic, and the mean of their
# per-run ratios with a 95% interval across runs.
#
#   VARIANTS="on:/path/to/sluice:true off:/path/to/sluice:false" RUNS=4 ROUNDS=10 benches/ab-runs.sh
#
# Why: the interval ab-parallel.sh prints covers the rounds of one run. Runs of one build have
# differed by up to 3 points (what changes from run to run — the broker's and the topic's
# state, where the processes land — is the same for every round of a run), so a comparison of
# builds needs several runs; several short ones say more than one long one. Other settings
# (ROUNDS, MSGS, PORT_BASE) pass through to ab-parallel.sh.
set -euo pipefail
RUNS=${RUNS:-4}
HERE=$(dirname "${BASH_SOURCE[0]}")
OUT=$(mktemp /tmp/sluice-abruns-XXXXXX)
trap 'rm -f "$OUT"' EXIT
read -r -a V <<< "${VARIANTS:?set VARIANTS=\"name:binary:tap name:binary:tap\"}"
for run in $(seq "$RUNS"); do
  echo "ab-runs: run $run of $RUNS" >&2
  bash "$HERE/ab-parallel.sh" | sed "s/^/$run /" | tee -a "$OUT"
done

python3 - "$OUT" "${V[0]%%:*}" "${V[1]%%:*}" <<'PY'
import re, statistics as st, sys
from collections import defaultdict
runs = defaultdict(lambda: defaultdict(dict))
for line in open(sys.argv[1]):
    m = re.match(r"(\d+) (\d+) (\S+) cpu_ms=([\d.]+) mb=([\d.]+) mb_per_s=([\d.]+)", line)
    if m:
        runs[m[1]][m[2]][m[3]] = float(m[4]) / (float(m[5]) * 2**20 / 1e9)
x, y = sys.argv[2], sys.argv[3]
means = []
for run, rounds in sorted(runs.items(), key=lambda r: int(r[0])):
    ratios = [r[x] / r[y] for r in rounds.values() if x in r and y in r]
    if ratios:
        means.append(st.mean(ratios))
        print(f"run {run}: {x} / {y} CPU per GB, mean of {len(ratios)} rounds {means[-1]:.3f}")
if len(means) > 1:
    # Student's t for 95% with len(means) - 1 degrees of freedom (2 to 30 runs).
    t = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14,
         2.13, 2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05,
         2.05][min(len(means), 30) - 2]
    half = t * st.stdev(means) / len(means) ** 0.5
    print(f"{x} / {y}, mean of {len(means)} runs: CPU per GB {st.mean(means):.3f} ± {half:.3f} "
          f"(95% across runs); run means {min(means):.3f} to {max(means):.3f}")
PY
