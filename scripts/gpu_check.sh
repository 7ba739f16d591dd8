#!/usr/bin/env bash
# The GPU check, in at most ~12 minutes on one GPU machine: the test suite on CUDA, `bench perf`
# (harness vs naive, FLOP/s, torch.compile, concurrent runs, stacks), `bench perf --grid`, and a timed slice
# of the `paper` grid.
# Usage: scripts/gpu_check.sh [OUTDIR]   (default: $OUT, else ./gpu_out). Everything it measures is
# packed into OUTDIR/gpu_check.tgz, with the logs beside it.
# Missing Python packages can be brought as wheels in .whl/ (installed into /tmp/site first).
set -uo pipefail
OUTDIR=${1:-${OUT:-gpu_out}}
mkdir -p "$OUTDIR/work"
export PYTHONUNBUFFERED=1 BENCH_CACHE=/tmp/bench-cache
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
T0=$(date +%s)
stamp() { echo "=== $1 at +$(( $(date +%s) - T0 )) s" | tee -a "$OUTDIR/summary.txt"; }

stamp "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc;
  $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"; } \
  2>&1 | tee -a "$OUTDIR/summary.txt"

stamp "tests on CUDA"
BENCH_TEST_DEVICE=cuda timeout 150 $PY -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_harness.py \
  tests/test_methods.py tests/test_stacking.py 2>&1 | tee "$OUTDIR/tests.log" | tail -15

stamp "bench perf (paper preset): harness vs naive, FLOP/s, compile, concurrent processes, K runs as one grouped model"
timeout 240 $PY -m bench perf --preset paper --repeats 3 --epochs 10 --concurrency 1,2,4 --batched 4,8 \
  --results "$OUTDIR/work/results" 2>&1 | tee "$OUTDIR/perf.log" | grep -v Warning

stamp "bench perf --grid (paper preset, 200 steps): 4 runs per GPU in processes against stacks of 4 seeds"
timeout 120 $PY -m bench perf --grid --preset paper --steps 200 --seeds 4 --stack 4 --results "$OUTDIR/work/results" \
  2>&1 | tee "$OUTDIR/perf_grid.log" | grep -v "\.\.\." | tail -8

stamp "paper grid slice: every method and os+fsc, both tasks, 1:0.01, 1 seed, 4 runs at a time (wall time = the grid's cost)"
timeout 200 $PY -m bench run --preset paper --dataset animals --task fine,coarse --methods all,os+fsc \
  --ratios 0.01 --seeds 1 --val-per-class 5 --executor gpus --workers-per-gpu 4 --out "$OUTDIR/work/runs" --plain 2>&1 \
  | tee "$OUTDIR/grid.log" | tail -25
$PY -m bench report --runs "$OUTDIR/work/runs" --out "$OUTDIR/work/report" > /dev/null 2>&1
stamp "done"
tar czf "$OUTDIR/gpu_check.tgz" -C "$OUTDIR/work" results runs report && rm -rf "$OUTDIR/work"  # named entries: extracting never touches the target folder's own mode
