#!/usr/bin/env bash
# The round-two grids (issues 11-14, grids/round2.toml), each resumable by run key.
# Usage: scripts/grid_round2.sh [extra `bench run` flags]   (records go to ${OUT:-results/runs})
set -euo pipefail
python -m bench run --grid grids/round2.toml --out "${OUT:-results/runs}" --plain "$@"
