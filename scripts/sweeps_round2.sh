#!/usr/bin/env bash
# Issue 14, after scripts/grid_round2.sh: the hyper-parameter sweeps on a validation hold-out, seed by seed
# (grids/sweeps_round2.toml), then the coarse and long-tailed tasks with every method
# (grids/round2_other_tasks.toml). Resumable by run key. Usage: scripts/sweeps_round2.sh [extra `bench run` flags]
set -euo pipefail
for grid in grids/sweeps_round2.toml grids/round2_other_tasks.toml; do
    python -m bench run --grid "$grid" --out "${OUT:-results/runs}" --plain "$@"
done
