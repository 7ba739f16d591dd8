#!/usr/bin/env bash
# The FSC hyper-parameter sweep of issue 7 (grids/fsc_sweep.toml), seed by seed, resumable by run key.
# Usage: scripts/fsc_sweep.sh [extra `bench run` flags, e.g. --executor pool --workers-per-gpu 2 --threads 1]
set -euo pipefail
python -m bench run --grid grids/fsc_sweep.toml --out "${OUT:-results/runs}" "$@"
