"""The cheap-end variant with a bound (docs/search-efficiency.md, "Tried since, not adopted"): at
the stop rung a keep set that costs less, on every cost objective, than each trained keep set
inside the hypervolume's reference box is judged with SPREADS spreads of optimism instead of the
default's 1.5 (`cheap_end.py` lets every such keep set go on). From the repository root:

    python studies/bench/2026-12-07/tried/cheap_end_spreads.py 3 bench replay ARGS...
"""

import sys

from cheap_end import base, cheaper_than_the_front, patch

import autoprune.multifidelity as mf
from autoprune.cli import main

spreads = float(sys.argv.pop(1))


def still_promising(trials, steps, value, point, full, accuracy, reference):
    if not cheaper_than_the_front(trials, point, full, accuracy, reference):
        return base(trials, steps, value, point, full, accuracy, reference)
    optimism, mf.OPTIMISM = mf.OPTIMISM, spreads
    try:
        return base(trials, steps, value, point, full, accuracy, reference)
    finally:
        mf.OPTIMISM = optimism


patch(still_promising)
sys.exit(main(sys.argv[1:]))
