#!/usr/bin/env bash
# Issue 25's new baselines on real data, resumable by run key: the slice every changed method got
# (animals fine 1:0.01, 3 seeds, quick preset), one process, with os and ce of the same seeds already
# on that board (scripts/round3.sh). Records go to ${OUT:-results/runs}.
set -euo pipefail
python -m bench run --dataset animals --task fine --ratios 0.01 --seeds 3 --methods wb,bcl,ssb \
    --out "${OUT:-results/runs}" --plain --executor local "$@"
