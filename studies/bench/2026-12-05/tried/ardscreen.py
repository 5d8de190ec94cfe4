"""The layer-weighted variant (docs/search-efficiency.md, "Tried since, not adopted"): the
kernel's Hamming distance weights each layer by how much the zero-shot screen says it matters,
(1 - MIX) + MIX x |effect| / mean |effect|, where a layer's effect is the mean log screen of the
keep sets without it less that of those with it, within each size, averaged over sizes. From the
repository root:

    python studies/bench/2026-12-05/tried/ardscreen.py 0.5 bench replay ARGS...
"""

import sys

import numpy as np

import autoprune.multifidelity as mf
from autoprune.cli import main

mix = float(sys.argv.pop(1))
_cache = {}


def layer_weights(pool):
    key = id(pool)  # the pool is kept beside its weights, so its id is not reused
    if key not in _cache:
        logs = np.log(pool.screen)
        kept = pool.layers.sum(-1)
        eff = []
        for layer in range(pool.layers.shape[1]):
            diffs = []
            for s in np.unique(kept):
                m = kept == s
                w = pool.layers[:, layer] > 0
                if (m & w).any() and (m & ~w).any():
                    diffs.append(logs[m & ~w].mean() - logs[m & w].mean())
            eff.append(np.mean(diffs) if diffs else 0.0)
        eff = np.abs(eff)
        rel = eff / eff.mean() if eff.mean() > 0 else np.ones_like(eff)
        _cache[key] = (pool, (1 - mix) + mix * rel)
    return _cache[key][1]


def kernel(self, a, b, length, screen_weight, power):
    w = layer_weights(self)
    hamming = (np.abs(self.layers[a][:, None, :] - self.layers[b][None, :, :]) * w).mean(-1)
    screen = ((self.screen_z[a][:, None, :] - self.screen_z[b][None, :, :]) ** 2).sum(-1)
    scale = self.spread(power)
    return (
        scale[a][:, None]
        * scale[b][None, :]
        * np.exp(-4 * hamming / length - screen_weight * screen / 4)
    )


mf.Pool.kernel = kernel
sys.exit(main(sys.argv[1:]))
