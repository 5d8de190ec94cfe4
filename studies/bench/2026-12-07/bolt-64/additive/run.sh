#!/bin/bash
# the additive kernel part (additive.patch on 86a5be8; EXP_ADD: the weights marginal likelihood may pick), against std and off from ../zscore
# usage: OUT=DIR run.sh NAME ADD TABLE.json   (add01: ADD=0,1; add04: ADD=0,4), with the patch applied in /tmp/wt64
name=$1; add=$2; T=$3; OUT=${OUT:-/tmp/s64/add}
cd /tmp/wt64
EXP_ADD=$add PYTHONPATH=/tmp/wt64 /work/main/.venv/bin/autoprune bench replay --truth $T --seeds 1 --out $OUT/$name/cold --strategy screened-mf > /dev/null 2>&1
EXP_ADD=$add PYTHONPATH=/tmp/wt64 /work/main/.venv/bin/autoprune bench replay --truth $T --seeds 5 --noise 0.01 --out $OUT/$name/noise --strategy screened-mf > /dev/null 2>&1
