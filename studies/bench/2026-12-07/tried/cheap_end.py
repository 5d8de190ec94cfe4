"""The cheap-end variant (docs/search-efficiency.md, "Tried since, not adopted"): at the stop rung
a keep set that costs less, on every cost objective, than each trained keep set inside the
hypervolume's reference box goes on to the full budget whatever its rung value: it would extend
the front to a cost nothing reaches yet, where a point adds most, and the rung's calibration
misjudged an outlier there (the held-out ETTh2 table's `[6]`, stopped with its rung 2.6 spreads
off its size's mean shift). Stopping such a keep set saves least (1-layer keep sets are the
cheapest to re-align). From the repository root:

    python studies/bench/2026-12-07/tried/cheap_end.py bench replay ARGS...
"""

import sys

import numpy as np

import autoprune.bench.replay as replay
import autoprune.multifidelity as mf
from autoprune.cli import main

base = mf.still_promising


def cheaper_than_the_front(trials, point, full, accuracy, reference) -> bool:
    """Whether `point` costs less on every cost objective than each trained trial inside the
    reference box (none inside: False)."""
    done = [t for t in trials if mf.is_trained(t)]
    if not done:
        return False
    front = np.array([t.values for t in done], dtype=float) / full
    inside = front[np.all(front < reference, axis=1)]
    costs = [j for j in range(len(full)) if j != accuracy]
    cost = np.asarray(point, dtype=float)[costs]
    return bool(len(inside)) and bool(np.all(cost < inside[:, costs]))


def patch(still_promising) -> None:
    mf.still_promising = still_promising
    replay.still_promising = still_promising


def still_promising(trials, steps, value, point, full, accuracy, reference):
    if cheaper_than_the_front(trials, point, full, accuracy, reference):
        return True
    return base(trials, steps, value, point, full, accuracy, reference)


if __name__ == "__main__":
    patch(still_promising)
    sys.exit(main(sys.argv[1:]))
