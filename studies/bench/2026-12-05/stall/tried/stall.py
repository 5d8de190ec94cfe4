"""What the screened sampler does once the front stalls, the variants tried (docs/
search-efficiency.md, "Exploring when the front stalls"). From the repository root:

    python studies/bench/2026-12-05/stall/tried/stall.py MODE STALL bench replay ARGS...

Once STALL trained trials in a row add no hypervolume, the sampler proposes, until one adds
some: `unscreened`, by its surrogate without the screen (today's rule, `multifidelity.STALL`
at another length); `widen-3`, by its surrogate with the screen and the posterior's spread
tripled; `uncertain`, the free keep set of largest posterior spread among those whose costs lie
inside the reference box.
"""

import sys

import numpy as np

import autoprune.multifidelity as mf
from autoprune.cli import main

mode, mf.STALL = sys.argv.pop(1), int(sys.argv.pop(1))
if mode not in ("unscreened", "widen-3", "uncertain"):
    sys.exit(f"unknown mode {mode!r}")
fit, pick = mf.surrogate, mf.choose
stalled = [False]


def surrogate(pool, observed, predicted=None, prior=None, screened=True):
    stalled[0] = not screened  # the sampler asks without the screen once the front stalls
    if mode == "unscreened" or screened:
        return fit(pool, observed, predicted, prior, screened)
    posterior = fit(pool, observed, predicted, prior)
    if mode == "widen-3":
        posterior.std = posterior.std * 3
    return posterior


def choose(pool, observed, busy, reference, predicted=None, prior=None, posterior=None):
    if not (stalled[0] and mode == "uncertain"):
        return pick(pool, observed, busy, reference, predicted, prior, posterior)
    free = np.array([i for i in range(len(pool.keeps)) if i not in observed and i not in busy])
    if len(free) == 0:
        return None
    inside = np.all(pool.costs[free] < reference[1:], axis=1)
    candidates = free[inside] if inside.any() else free
    return int(candidates[np.argmax(posterior.std[candidates])])


mf.surrogate, mf.choose = surrogate, choose
sys.exit(main(sys.argv[1:]))
