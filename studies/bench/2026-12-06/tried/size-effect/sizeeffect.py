"""A variant tried at stop 52, not adopted (docs/search-efficiency.md, "Tried since, not
adopted"): the surrogate's kernel gains a per-size random effect, b x [same number of kept
layers] (scaled like the rest by each keep set's spread), with b in {0} and B chosen by marginal
likelihood beside the other hyperparameters: each size's offset from the prior mean is learned
from its trained keep sets and shared by its untried ones, without leaking to other sizes (the
`mean` variant's linear prior mean did). Aimed at the default's first trials, which train most
1-layer keep sets one by one. From the repository root:

    python studies/bench/2026-12-06/tried/size-effect/sizeeffect.py 0.5,1 bench replay ARGS...

The prior variance of a keep set includes the effect (`Pool.prior_variance`: spread^2 x
(1 + b)).
"""

import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

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


def prior_variance(self, length, screen_weight, power):
    length, effect = length
    return self.spread(power) ** 2 * (1 + effect)


mf.Pool.kernel = kernel
mf.Pool.prior_variance = prior_variance
sys.exit(main(sys.argv[1:]))
