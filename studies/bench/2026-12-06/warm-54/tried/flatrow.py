"""Variant: a warm start keeps the cold prior (the full model's accuracy everywhere) as one more
row of its prior means; marginal likelihood picks among them after every trial. MODE 'first':
before any trial, the warm rows' mean (the first proposal as today); 'mean': all rows' mean.

    python flatrow.py MODE bench replay ARGS...
"""

import sys

import numpy as np

import autoprune.multifidelity as mf

MODE = sys.argv.pop(1)
orig_init = mf.ScreenedSampler.__init__
orig_fit = mf.fit_surrogate


def init(self, *args, **kwargs):
    orig_init(self, *args, **kwargs)
    if self.prior is not None:
        self.prior = np.vstack([self.prior, np.ones(self.prior.shape[1])])
        self.warm_names = [*self.warm_names, "(none)"]


def fit(pool, observed, noise_of=None, prior=None, screened=True):
    if (
        MODE == "first"
        and prior is not None
        and not observed
        and np.ndim(prior) == 2
        and len(prior) > 1
    ):
        return mf.Posterior(prior[:-1].mean(0), np.full(prior.shape[1], 0.1))
    return orig_fit(pool, observed, noise_of, prior, screened)


mf.ScreenedSampler.__init__ = init
mf.fit_surrogate = fit
if __name__ == "__main__":
    from autoprune.cli import main

    sys.exit(main())
