#!/bin/bash
# Stop 64's z-score variants of the screen in the surrogate's kernel (`variants.patch`, applied to
# 86a5be8 in a worktree: EXP_Z std | rank | robust picks how `Pool.build` scores the screen,
# EXP_W the screen weights marginal likelihood may pick). Per mode and design table: the default
# (`screened-mf`) replayed as measured (deterministic, 1 seed) and under noise 0.01 (5 siblings).
#   git worktree add /tmp/wt64 86a5be8 && (cd /tmp/wt64 && git apply $PWD/variants.patch)
#   for d in etth1 etth2 exchange-rate ili; do for m in std rank off robust w1; do ./run.sh $m $d; done; done
#   python compare.py std rank robust off w1 > compare.log   # (in $OUT)
set -e
mode=$1; d=$2; OUT=${OUT:-/tmp/s64/exp}
T=/work/main/studies/bench/2026-12-07/bolt-63/truth-chronos-bolt-tiny-8-$d.json
extra=""; [ $mode = off ] && extra="--screen off"
z=$mode; [ $mode = off ] && z=std; case $mode in w1*) z=std; export EXP_W=1,2,4;; esac
cd /tmp/wt64
EXP_Z=$z PYTHONPATH=/tmp/wt64 /work/main/.venv/bin/autoprune bench replay --truth $T --seeds 1 $extra --out $OUT/$mode/cold --strategy screened-mf
EXP_Z=$z PYTHONPATH=/tmp/wt64 /work/main/.venv/bin/autoprune bench replay --truth $T --seeds 5 --noise 0.01 $extra --out $OUT/$mode/noise --strategy screened-mf
