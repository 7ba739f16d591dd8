#!/usr/bin/env bash
# Issue 14, after scripts/grid_round2.sh: one key hyper-parameter per method family, swept on a balanced
# validation hold-out (100 training-pool images per class; `bench report` picks per ratio the value with
# the best validation balanced accuracy and never reads test numbers to choose), both fine tasks, the
# three extreme ratios, 5 seeds, `os` beside them as the reference; then the coarse tasks and the
# long-tailed tasks with every method. Seeds grow one at a time, so a sweep cut short covers every
# configuration. Resumable by run key. Usage: scripts/sweeps_round2.sh [extra `bench run` flags]
set -euo pipefail
out=(--out "${OUT:-results/runs}" --plain)
fine=(--dataset animals,fashion --task fine --ratios 0.05,0.01,0.005 --val-per-class 100)
for n in 1 2 3 4 5; do
    python -m bench run "${fine[@]}" --seeds "$n" --methods os,la --sweep 'la.tau=0.5|1|2' "${out[@]}" "$@"
    python -m bench run "${fine[@]}" --seeds "$n" --methods cb --sweep 'cb.beta=0.99|0.999|0.9999' "${out[@]}" "$@"
    python -m bench run "${fine[@]}" --seeds "$n" --methods ldam+drw --sweep 'drw.start=0.5|0.65|0.8' "${out[@]}" "$@"
    python -m bench run "${fine[@]}" --seeds "$n" --methods os+focal --sweep 'focal.gamma=0.5|1|2' "${out[@]}" "$@"
    python -m bench run "${fine[@]}" --seeds "$n" --methods os+remix --sweep 'remix.alpha=0.2|0.5|1' "${out[@]}" "$@"
    python -m bench run "${fine[@]}" --seeds "$n" --methods crt --sweep 'crt.share=0.05|0.1|0.2' "${out[@]}" "$@"
    python -m bench run "${fine[@]}" --seeds "$n" --methods fsc,os+fsc --sweep 'fsc.lam=0.1|0.3|1' "${out[@]}" "$@"
done
all=(--methods all,os+all,ldam+drw --seeds 5)
python -m bench run --dataset animals,fashion --task coarse --ratios 0.05,0.01,0.005 "${all[@]}" "${out[@]}" "$@"
python -m bench run --dataset animals,fashion --task lt --ratios 0.1,0.01 "${all[@]}" "${out[@]}" "$@"
