#!/usr/bin/env bash
# Round three (issues 25 and 23), in the order their evidence is needed, each resumable by run key.
# Usage: scripts/round3.sh [extra `bench run` flags]   (records go to ${OUT:-results/runs})
# 1. The mended and revised methods on real data (issue 25): animals fine 1:0.01, 3 seeds, quick preset,
#    with ce and os beside them; taunorm chooses tau on a 100-image-per-class validation hold-out.
# 2. The budget study (issue 23): 11 methods on animals lt 1:0.01, animals fine 1:0.01 and Fashion-MNIST
#    fine 1:0.01 at 240, 600, 1200 and 2400 steps, one seed at a time (a study cut short covers every
#    cell and budget with the seeds it finished).
set -euo pipefail
out=(--out "${OUT:-results/runs}" --plain)
slice=(--dataset animals --task fine --ratios 0.01 --seeds 3)
python -m bench run "${slice[@]}" --methods ce,os,crt,lws,opl,drw,ldam+drw,supcon2,pb "${out[@]}" "$@"
python -m bench run "${slice[@]}" --methods cb --set cb.base=focal "${out[@]}" "$@"
python -m bench run "${slice[@]}" --val-per-class 100 --methods os,taunorm "${out[@]}" "$@"
study=(--methods ce,os,cbs,sqrt,la,ldam+drw,crt,os+remix,os+mixup,fsc,os+fsc --steps 240,600,1200,2400)
for n in 1 2 3; do
    python -m bench run --dataset animals --task lt --ratios 0.01 --seeds "$n" "${study[@]}" "${out[@]}" "$@"
    python -m bench run --dataset animals,fashion --task fine --ratios 0.01 --seeds "$n" "${study[@]}" "${out[@]}" "$@"
done
