"""The default's trial rule against a patience rule, on the shipped replays' curves (not shipped
in the product): after 30 trained keep sets, go on while the front's hypervolume grew by at least
GAIN within the last P trials, to at most 45. Prints, over every seed of the replays named, the
mean trials and the mean share of the true hypervolume at the stop, per rule.

    python studies/bench/2026-12-06/tried/default-trials/patience.py REPLAY.json|FOLDER ...
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[5] / "scripts"))
from default_trials import rule_stops  # noqa: E402

from autoprune.bench.replay import read, replay_files  # noqa: E402


def patience(curve, trials_back, gain, first=30, most=45):
    held = curve + [curve[-1]] * max(most - len(curve), 0)
    trials = first
    while trials < most and held[trials - 1] >= (1 + gain) * held[trials - 1 - trials_back]:
        trials += 1
    return trials


rules = {
    "fixed 30": lambda c: 30,
    "the product's rule": rule_stops,
    "patience 5, 1%": lambda c: patience(c, 5, 0.01),
    "patience 10, 0.5%": lambda c: patience(c, 10, 0.005),
    "patience 10, 1%": lambda c: patience(c, 10, 0.01),
    "fixed 45": lambda c: 45,
}
curves = [
    c
    for f in replay_files([Path(p) for p in sys.argv[1:]])
    for c in read(f)["strategies"]["screened-mf"]["curves"]
]
for name, rule in rules.items():
    stops = [rule(c) for c in curves]
    shares = [c[min(s, len(c)) - 1] for c, s in zip(curves, stops, strict=True)]
    print(f"{name:>20}: mean {np.mean(stops):.1f} trials, mean share {np.mean(shares):.3f}")
