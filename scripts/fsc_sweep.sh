#!/usr/bin/env bash
# The FSC hyper-parameter sweep of issue 7, one factor at a time around the default (lam 1,
# layers layer3,layer4): lam in 0.1|0.3|1|3, then layers in layer4 | layer3,layer4 |
# layer2,layer3,layer4; `os` beside them on the same validation hold-out as the reference.
# Seeds grow one at a time so that a sweep cut short still covers every configuration.
# Usage: scripts/fsc_sweep.sh [extra `bench run` flags, e.g. --executor gpus --device cpu --workers-per-gpu 2 --threads 1]
set -euo pipefail
common=(--dataset animals,fashion --task fine --ratios 0.05,0.01,0.005 --val-per-class 100 --out "${OUT:-results/runs}")
for n in 1 2 3 4 5; do
    python -m bench run "${common[@]}" --seeds "$n" --methods os,os+fsc --sweep 'fsc.lam=0.1|0.3|1|3' "$@"
    python -m bench run "${common[@]}" --seeds "$n" --methods os+fsc --sweep 'fsc.layers=layer4|layer3,layer4|layer2,layer3,layer4' "$@"
done
