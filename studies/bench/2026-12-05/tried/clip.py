"""The clipped variant (docs/search-efficiency.md, "Tried since, not adopted"): every accuracy the
surrogate is fitted to (normalised by the full model's) clipped to at most CAP, so that a keep set
far above the hypervolume's reference (1.1) does not pull the fit. From the repository root:

    python studies/bench/2026-12-05/tried/clip.py 1.15 bench replay ARGS...
"""

import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

cap = float(sys.argv.pop(1))
base = mf.fit_surrogate


def clipped(pool, observed, noise_of=None, prior=None):
    return base(pool, {i: min(v, cap) for i, v in observed.items()}, noise_of, prior)


mf.fit_surrogate = clipped
sys.exit(main(sys.argv[1:]))
