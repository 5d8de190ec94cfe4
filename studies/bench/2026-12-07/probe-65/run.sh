#!/bin/bash
# Stop 65's variants (`variants.patch`, applied to 997c9a9 in a worktree; every change is off
# unless its variable is set). Per mode and table: the default (`screened-mf`) replayed as
# measured (deterministic, 1 seed) and under noise 0.01 (5 siblings). MODE:
#   base     today's default
#   replace  the zero-shot screen replaced by the drop-one probe: each layer's drop-one keep set
#            re-aligned to the 10-step rung, every keep set scored by the sum of the log rung
#            values of the layers it drops; the probes' rung costs charged, the screen's not
#   combine  the mean of the probe's and the screen's z-scores; both charged
#   free     replace, the probes not charged (what the information alone is worth)
#   slope    the rung's calibration linear in the keep set's size where BIC prefers it
#   exclude  keep sets past BROKEN (3x the full model) left out of the surrogate's fit
#   cap2     BROKEN 2, not 3 (exclude and cap2 replayed on the Chronos-Bolt tables only)
# From the repository root:
#   git worktree add /tmp/wt65 997c9a9 && (cd /tmp/wt65 && git apply $PWD/studies/bench/2026-12-07/probe-65/variants.patch)
#   for m in base replace combine free slope; do for T in $(cat studies/bench/2026-12-07/probe-65/tables.txt); do
#       WT=/tmp/wt65 OUT=/tmp/probe bash studies/bench/2026-12-07/probe-65/run.sh $m $T; done; done
#   python studies/bench/2026-12-07/probe-65/compare.py /tmp/probe base,replace,combine,free,slope
#   python studies/bench/2026-12-07/probe-65/compare.py /tmp/probe base,exclude,cap2
set -e
mode=$1; T=$2; OUT=${OUT:-/tmp/probe}; WT=${WT:-/tmp/wt65}; REPO=$PWD
unset AP_PROBE AP_PROBE_FREE AP_SLOPE AP_EXCLUDE AP_BROKEN
case $mode in
  replace|combine) export AP_PROBE=$mode;;
  free) export AP_PROBE=replace AP_PROBE_FREE=1;;
  slope) export AP_SLOPE=1;;
  exclude) export AP_EXCLUDE=1;;
  cap2) export AP_BROKEN=2;;
esac
for run in "--seeds 1" "--seeds 5 --noise 0.01"; do
  kind=cold; [[ $run == *noise* ]] && kind=noise
  PYTHONPATH=$WT $REPO/.venv/bin/autoprune bench replay --truth $T $run \
      --out $OUT/$mode/$kind --strategy screened-mf
done
