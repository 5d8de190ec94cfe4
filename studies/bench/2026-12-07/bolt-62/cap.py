"""The surrogate's fit with each accuracy (normalised by the full model's) capped at CAP, so a
broken keep set (Chronos-Bolt without decoder blocks forecasts from the scale alone: 60-80x the
full model's error) does not pull the fit of its neighbours. From the repository root:

    python studies/bench/2026-12-07/bolt-62/cap.py 2 bench replay ARGS...
"""

import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

cap = float(sys.argv.pop(1))
base = mf.fit_surrogate


def capped(pool, observed, noise_of=None, prior=None, screened=True):
    return base(pool, {i: min(v, cap) for i, v in observed.items()}, noise_of, prior, screened)


mf.fit_surrogate = capped
sys.exit(main(sys.argv[1:]))
