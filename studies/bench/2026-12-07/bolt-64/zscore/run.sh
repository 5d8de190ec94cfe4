#!/bin/bash
# Stop 64's z-score variants of the screen in the surrogate's kernel (`variants.patch`, applied to
# 86a5be8 in a worktree: EXP_Z std | rank | robust picks how `Pool.build` scores the screen,
# EXP_W the screen weights marginal likelihood may pick). Per mode and design table: the default
# (`screened-mf`) replayed as measured (deterministic, 1 seed) and under noise 0.01 (5 siblings).
# From the repository root:
#   git worktree add /tmp/wt64 86a5be8 && (cd /tmp/wt64 && git apply $PWD/studies/bench/2026-12-07/bolt-64/zscore/variants.patch)
#   for d in etth1 etth2 exchange-rate ili; do for m in std rank off robust w1; do
#       WT=/tmp/wt64 OUT=/tmp/zscore bash studies/bench/2026-12-07/bolt-64/zscore/run.sh $m $d; done; done
#   python studies/bench/2026-12-07/bolt-64/zscore/compare.py /tmp/zscore/{std,rank,robust,off,w1}
set -e
mode=$1; d=$2; OUT=${OUT:-/tmp/zscore}; WT=${WT:-/tmp/wt64}; REPO=$PWD
T=$REPO/studies/bench/2026-12-07/bolt-63/truth-chronos-bolt-tiny-8-$d.json
extra=""; [ $mode = off ] && extra="--screen off"
z=$mode; [ $mode = off ] && z=std; case $mode in w1*) z=std; export EXP_W=1,2,4;; esac
for run in "--seeds 1" "--seeds 5 --noise 0.01"; do
  kind=cold; [[ $run == *noise* ]] && kind=noise
  EXP_Z=$z PYTHONPATH=$WT $REPO/.venv/bin/autoprune bench replay --truth $T $run $extra \
      --out $OUT/$mode/$kind --strategy screened-mf
done
