"""Any `autoprune` command with the surrogate's fit wrapped to record the largest accuracy ratio
(to the full model's) it is ever fitted to: observed, predicted from a rung, or a warm start's.
Printed to stderr at exit as `LARGEST x`. Run with stop 62's code (no cap), a replay of a Moirai
table whose largest is under 3 replays the same with the cap (`BROKEN`). From the repository
root:

    python studies/bench/2026-12-07/bolt-63/maxfit.py bench replay --truth TABLE --seeds 5 \
        --strategy screened-mf --out /tmp/maxfit
"""

import atexit
import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

base = mf.fit_surrogate
largest = [0.0]


def recording(pool, observed, noise_of=None, prior=None, screened=True):
    if observed:
        largest[0] = max(largest[0], max(observed.values()))
    return base(pool, observed, noise_of, prior, screened)


mf.fit_surrogate = recording
atexit.register(lambda: print(f"LARGEST {largest[0]:.4f}", file=sys.stderr))
sys.exit(main(sys.argv[1:]))
