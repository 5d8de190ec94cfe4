"""Variant: a warm start transfers how the other study ranks keep sets within a size, not the
level of each size: each warm prior row, less its mean over the pool's keep sets of that size,
plus the cold prior's level (1, the full model's accuracy). MODE 'within': those rows only;
'both': those rows and the warm rows as they are, marginal likelihood picking among them.

    python within.py MODE bench replay ARGS...
"""

import sys

import numpy as np

import autoprune.multifidelity as mf

MODE = sys.argv.pop(1)
orig_init = mf.ScreenedSampler.__init__


def centred(pool, prior):
    size = pool.layers.sum(-1)
    out = prior.copy()
    for s in np.unique(size):
        m = size == s
        out[:, m] = prior[:, m] - prior[:, m].mean(1, keepdims=True) + 1.0
    return out


def init(self, *args, **kwargs):
    orig_init(self, *args, **kwargs)
    if self.prior is not None:
        c = centred(self.pool, self.prior)
        if MODE == "within":
            self.prior = c
        else:
            self.prior = np.vstack([c, self.prior])
            self.warm_names = [*(n + "-within" for n in self.warm_names), *self.warm_names]


mf.ScreenedSampler.__init__ = init
if __name__ == "__main__":
    from autoprune.cli import main

    sys.exit(main())
