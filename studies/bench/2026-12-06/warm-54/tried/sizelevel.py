"""Variant: with a warm-start prior, each size's level is uncertain by TAU (a fixed per-size
offset, shared by the keep sets of that size, in the GP on top of the warm prior mean): one
trial of a size moves that size's level, and a size not yet trained keeps TAU of spread.

    python sizelevel.py TAU bench replay ARGS...
"""

import itertools
import sys

import numpy as np

import autoprune.multifidelity as mf
from autoprune.multifidelity import AMPLITUDES, LENGTHS, NOISES, POWERS, SCREEN_WEIGHTS, Posterior

TAU = float(sys.argv.pop(1))
orig_init = mf.ScreenedSampler.__init__
orig_fit = mf.fit_surrogate
WARM_PRIORS = set()  # the ids of warm-start prior arrays: only those get the size levels


def init(self, *args, **kwargs):
    orig_init(self, *args, **kwargs)
    if self.prior is not None:
        WARM_PRIORS.add(id(self.prior))


def fit(pool, observed, noise_of=None, prior=None, screened=True):
    if prior is None or id(prior) not in WARM_PRIORS:
        return orig_fit(pool, observed, noise_of, prior, screened)
    priors = np.atleast_2d(prior)
    several = len(priors) > 1
    idx = np.array(sorted(observed), dtype=int)
    if len(idx) == 0:
        return Posterior(priors.mean(0), np.full(priors.shape[1], 0.1))
    size = pool.layers.sum(-1)

    def same(a, b):
        return (size[a][:, None] == size[b][None, :]).astype(float)

    level = TAU**2 * same(idx, idx)
    accuracy = np.array([observed[i] for i in idx])
    extra = np.diag([(noise_of or {}).get(i, 0.0) for i in idx])
    best = None
    weights = SCREEN_WEIGHTS if screened else (0.0,)
    for length, weight, power in itertools.product(LENGTHS, weights, POWERS):
        gram = pool.kernel(idx, idx, length, weight, power)
        for amplitude in AMPLITUDES:
            for noise in NOISES:
                try:
                    chol = np.linalg.cholesky(
                        amplitude * gram + level + noise * np.eye(len(idx)) + extra
                    )
                except np.linalg.LinAlgError:
                    continue
                for row, mean in enumerate(priors):
                    y = accuracy - mean[idx]
                    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
                    evidence = -0.5 * y @ alpha - np.log(np.diag(chol)).sum()
                    if best is None or evidence > best[0]:
                        best = (
                            evidence,
                            (length, weight, power, amplitude, noise),
                            chol,
                            alpha,
                            row,
                        )
    _, (length, weight, power, amplitude, noise), chol, alpha, row = best
    mean = priors[row]
    every = np.arange(len(pool.keeps))
    cross = amplitude * pool.kernel(every, idx, length, weight, power) + TAU**2 * same(every, idx)
    explained = np.linalg.solve(chol, cross.T)
    var = (
        amplitude * pool.prior_variance(length, weight, power)
        + TAU**2
        + noise
        - (explained**2).sum(0)
    )
    return Posterior(
        mean + cross @ alpha, np.sqrt(np.maximum(var, 1e-12)), row if several else None
    )


mf.ScreenedSampler.__init__ = init
mf.fit_surrogate = fit
if __name__ == "__main__":
    from autoprune.cli import main

    sys.exit(main())
