"""The screen-mean variant (docs/search-efficiency.md, "Tried since, not adopted"): the
surrogate's prior mean linear in the zero-shot screen, 1 + b x z, where z is the keep set's
screen z-score (COLUMN 0: over every keep set, 1: within its size) and b is chosen by marginal
likelihood from GRID (0 among them), as the warm start's rows are. From the repository root:

    python studies/bench/2026-12-05/tried/screenmean.py 0 bench replay ARGS...
"""

import sys

import numpy as np

import autoprune.multifidelity as mf
from autoprune.cli import main

column = int(sys.argv.pop(1))
GRID = (0.0, 0.01, 0.03)
base = mf.fit_surrogate


def fit(pool, observed, noise_of=None, prior=None):
    if prior is None:  # a warm start keeps its own prior
        z = pool.screen_z[:, column]
        prior = np.array([1 + b * z for b in GRID])
    posterior = base(pool, observed, noise_of, prior)
    posterior.prior = None  # no warm-start study led
    return posterior


mf.fit_surrogate = fit
sys.exit(main(sys.argv[1:]))
