#!/usr/bin/env bash
# The round-two grids (issues 11-14), in the order their evidence is needed, each resumable by run key.
# Usage: scripts/grid_round2.sh [extra `bench run` flags]   (records go to ${OUT:-results/runs})
# On the 2-core development machine: ~17 s per run with the default pool (2 workers x 1 thread).
set -euo pipefail
out=(--out "${OUT:-results/runs}" --plain)
all=(--methods all,os+all,ldam+drw)
# 1. Every method and its os+ variant on animals fine 1:0.01, 3 seeds (issues 11 and 12): 99 runs.
python -m bench run --dataset animals --task fine --ratios 0.01 --seeds 3 "${all[@]}" "${out[@]}" "$@"
# 2. The long-tailed tasks at imbalance 10 and 100, 5 seeds (issue 13): 200 runs.
python -m bench run --dataset animals,fashion --task lt --ratios 0.1,0.01 --seeds 5 \
    --methods ce,os,focal,cb,la,ldam+drw,crt,taunorm,fsc,os+fsc "${out[@]}" "$@"
# 3. The fine tasks, every method and os+ variant, three extreme ratios, 5 seeds (issue 14): 990 runs.
python -m bench run --dataset animals,fashion --task fine --ratios 0.05,0.01,0.005 --seeds 5 "${all[@]}" \
    "${out[@]}" "$@"
