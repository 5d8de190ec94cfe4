"""A variant tried at stop 52, not adopted (docs/search-efficiency.md, "Tried since, not
adopted"): the surrogate's kernel gains a per-size random effect, b x [same number of kept
layers] (scaled like the rest by each keep set's spread), with b in {0} and B chosen by marginal
likelihood beside the other hyperparameters: each size's offset from the prior mean is learned
from its trained keep sets and shared by its untried ones, without leaking to other sizes (the
`mean` variant's linear prior mean did). Aimed at the default's first trials, which train most
1-layer keep sets one by one. From the repository root:

    python studies/bench/2026-12-06/tried/size-effect/sizeeffect.py 0.5,1 bench replay ARGS...

`fit_surrogate` below is the shipped one with one change: the prior variance of a keep set
includes the effect (amplitude x spread^2 x (1 + b)).
"""

import itertools
import sys

import numpy as np

import autoprune.multifidelity as mf
from autoprune.cli import main
from autoprune.multifidelity import (
    AMPLITUDES,
    NOISES,
    POWERS,
    SCREEN_WEIGHTS,
    Pool,
    Posterior,
)

EFFECTS = tuple(float(b) for b in sys.argv.pop(1).split(","))
mf.LENGTHS = tuple((length, b) for length in mf.LENGTHS for b in (0.0, *EFFECTS))
shipped_kernel = mf.Pool.kernel


def kernel(self, a, b, length, screen_weight, power):
    length, effect = length
    k = shipped_kernel(self, a, b, length, screen_weight, power)
    if effect:
        size, scale = self.layers.sum(-1), self.spread(power)
        same = size[a][:, None] == size[b][None, :]
        k = k + effect * scale[a][:, None] * scale[b][None, :] * same
    return k


def fit_surrogate_new(
    pool: Pool,
    observed: dict[int, float],
    noise_of: dict[int, float] | None = None,
    prior: np.ndarray | None = None,
    screened: bool = True,
) -> Posterior:
    """GP regression of (accuracy - prior mean); the prior mean is the full model's accuracy
    for every keep set until trials say otherwise, or what a warm start learned elsewhere.
    `noise_of` adds variance to observations that are predictions (keep sets stopped at a
    rung) rather than measurements. `prior` (n,) or, from several warm-start studies, one row
    each (m, n): marginal likelihood picks the row, beside the kernel's hyperparameters, so the
    study most like this one leads once trials can tell (before any, their mean). Averaging the
    studies instead needed 1.3x-3.2x the compute of one study in replays, more than a cold start
    (docs/search-efficiency.md).

    The kernel (`Pool.kernel`) reads which layers a keep set keeps (Hamming distance) and its
    screen score, overall and within its size (squared-exponential on the two z-scores), and
    lets keep sets that drop more layers stray further from the prior mean (re-aligned accuracy
    varies far more among small keep sets than among large ones, so a stationary kernel is
    too sure of the small keep sets it has not seen and spends trials on near-ties among the
    large ones); its hyperparameters are chosen by marginal likelihood on every call, i.e.
    after every trial.
    How well the screen predicts re-aligned accuracy varies by model and dataset (measured by
    `autoprune bench truth`), so it must not be trusted blindly: it enters the kernel with a
    weight learned from the re-aligned trials, so it counts for as much as they say it predicts;
    `screened=False`: its weight is 0 (the sampler's proposals once the front stalls)."""
    priors = np.ones((1, len(pool.keeps))) if prior is None else np.atleast_2d(prior)
    several = len(priors) > 1
    idx = np.array(sorted(observed), dtype=int)
    if len(idx) == 0:
        return Posterior(priors.mean(0), np.full(priors.shape[1], 0.1))
    accuracy = np.array([observed[i] for i in idx])
    extra = np.diag([(noise_of or {}).get(i, 0.0) for i in idx])
    best = None
    weights = SCREEN_WEIGHTS if screened else (0.0,)
    for length, weight, power in itertools.product(mf.LENGTHS, weights, POWERS):
        gram = pool.kernel(idx, idx, length, weight, power)
        for amplitude in AMPLITUDES:
            for noise in NOISES:
                try:
                    chol = np.linalg.cholesky(amplitude * gram + noise * np.eye(len(idx)) + extra)
                except np.linalg.LinAlgError:
                    continue
                for row, mean in enumerate(priors):
                    y = accuracy - mean[idx]
                    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
                    evidence = -0.5 * y @ alpha - np.log(np.diag(chol)).sum()
                    if best is None or evidence > best[0]:
                        setting = (length, weight, power, amplitude, noise)
                        best = (evidence, setting, chol, alpha, row)
    _, (length, weight, power, amplitude, noise), chol, alpha, row = best
    mean = priors[row]
    cross = amplitude * pool.kernel(np.arange(len(pool.keeps)), idx, length, weight, power)
    explained = np.linalg.solve(chol, cross.T)
    var = amplitude * pool.spread(power) ** 2 * (1 + length[1]) + noise - (explained**2).sum(0)
    return Posterior(
        mean + cross @ alpha, np.sqrt(np.maximum(var, 1e-12)), row if several else None
    )


mf.Pool.kernel = kernel
mf.fit_surrogate = fit_surrogate_new
sys.exit(main(sys.argv[1:]))
