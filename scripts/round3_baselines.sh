#!/usr/bin/env bash
# Issue 25's new baselines on real data (grids/round3_baselines.toml), resumable by run key.
# Usage: scripts/round3_baselines.sh [extra `bench run` flags]   (records go to ${OUT:-results/runs})
set -euo pipefail
python -m bench run --grid grids/round3_baselines.toml --out "${OUT:-results/runs}" --plain "$@"
