#!/bin/bash
# Stop 66: replays of one restricted table (subtable.py's output, the keep sets that keep the
# last decoder block): the default (`screened-mf`) as measured (deterministic, 1 seed) and under
# noise 0.01 (5 siblings), the off-the-shelf yardstick (random, TPE, NSGA-II; 5 seeds, as
# measured and under noise) and GPSampler (5 seeds as measured, 3 under noise), into this
# folder's (or $OUT's) cold/, noise/, yardstick/{cold,noise}, gp/ and gp-noise/. From the root:
#   bash studies/bench/2026-12-08/head-66/run.sh TABLE.json [default|yardstick|gp]
set -e
T=$1; what=${2:-default}; H=${OUT:-studies/bench/2026-12-08/head-66}
case $what in
  default)
    autoprune bench replay --truth $T --seeds 1 --out $H/cold --strategy screened-mf
    autoprune bench replay --truth $T --seeds 5 --noise 0.01 --out $H/noise --strategy screened-mf;;
  yardstick)
    autoprune bench replay --truth $T --seeds 5 --out $H/yardstick/cold --strategy random --strategy tpe --strategy nsga2
    autoprune bench replay --truth $T --seeds 5 --noise 0.01 --out $H/yardstick/noise --strategy random --strategy tpe --strategy nsga2;;
  gp)
    autoprune bench replay --truth $T --seeds 5 --out $H/gp --strategy gp
    autoprune bench replay --truth $T --seeds 3 --noise 0.01 --out $H/gp-noise --strategy gp;;
esac
