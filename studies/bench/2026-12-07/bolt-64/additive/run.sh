#!/bin/bash
# Stop 64's additive kernel part (`additive.patch`, applied to 86a5be8 in a worktree; EXP_ADD: the
# weights marginal likelihood may pick, e.g. 0,1 for add01 and 0,4 for add04). Per table: the
# default replayed as measured (1 seed) and under noise 0.01 (5 siblings). From the repository root:
#   git worktree add /tmp/wt64 86a5be8 && (cd /tmp/wt64 && git apply $PWD/studies/bench/2026-12-07/bolt-64/additive/additive.patch)
#   for d in etth1 etth2 exchange-rate ili; do T=studies/bench/2026-12-07/bolt-63/truth-chronos-bolt-tiny-8-$d.json
#       WT=/tmp/wt64 OUT=/tmp/additive bash studies/bench/2026-12-07/bolt-64/additive/run.sh add01 0,1 $T; done
set -e
name=$1; add=$2; T=$3; OUT=${OUT:-/tmp/additive}; WT=${WT:-/tmp/wt64}
for run in "--seeds 1" "--seeds 5 --noise 0.01"; do
  kind=cold; [[ $run == *noise* ]] && kind=noise
  EXP_ADD=$add PYTHONPATH=$WT .venv/bin/autoprune bench replay --truth $T $run \
      --out $OUT/$name/$kind --strategy screened-mf
done
