#!/usr/bin/env bash
# Round three (issues 25 and 23), each grid resumable by run key: the mended and revised methods on real
# data (grids/round3_slice.toml), then the budget study, one seed at a time (grids/round3_study.toml).
# Usage: scripts/round3.sh [extra `bench run` flags]   (records go to ${OUT:-results/runs})
set -euo pipefail
for grid in grids/round3_slice.toml grids/round3_study.toml; do
    python -m bench run --grid "$grid" --out "${OUT:-results/runs}" --plain "$@"
done
