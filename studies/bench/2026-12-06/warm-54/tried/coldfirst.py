"""Variant: a warm-started search proposes its first keep set as the cold start would (the full
model's accuracy everywhere: a cheap keep set the screen favours), then follows the warm prior.

    python coldfirst.py N bench replay ARGS...   (N: cold proposals first)
"""

import sys

import autoprune.multifidelity as mf

COLD = int(sys.argv.pop(1))
orig_surrogate = mf.surrogate


def surrogate(pool, observed, predicted=None, prior=None, screened=True):
    if prior is not None and len(observed) + len(predicted or {}) < COLD:
        prior = None
    return orig_surrogate(pool, observed, predicted, prior, screened)


mf.surrogate = surrogate
if __name__ == "__main__":
    from autoprune.cli import main

    sys.exit(main())
