"""What the screened sampler does once the front has stalled long, the variants tried (docs/
search-efficiency.md, "Exploring further when the front stalls long"). From the repository root:

    python studies/bench/2026-12-05/explore/tried/explore.py MODE K bench replay ARGS...

It proposes as stop 47's default did (the screen dropped once `multifidelity.STALL` trained
trials in a row add no hypervolume; `ScreenedSampler.before_trial` written out here from its
`observations` on), and adds, once K trained trials in a row added none: `widen`, the
posterior's spread tripled in the expected improvement; `uncertain`, the free keep set of
largest posterior spread among those whose costs lie inside the reference box; `cycle`, the
screen back for K trials after K without it, alternately; `restore` (2026-12-06), the screen
back once K trained trials in a row added none, until one adds some (`restore 36` is today's
default, since stop 49, and reproduces it seed for seed); `none`, nothing (stop 47's default,
which it reproduced seed for seed).
"""

import sys

import numpy as np
from optuna.trial import TrialState

import autoprune.multifidelity as mf
from autoprune.cli import main
from autoprune.record import mark_sampled

mode, K = sys.argv.pop(1), int(sys.argv.pop(1))
if mode not in ("widen", "uncertain", "cycle", "restore", "none"):
    sys.exit(f"unknown mode {mode!r}")


def before_trial(self, study, trial):
    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
    trials = study.get_trials(deepcopy=False, states=states)
    observed, busy, predicted = self.observations(trials, trial.number)
    run = mf.stalled_for(trials, self.full, self.reference) if self.pool.screened else 0
    unscreened = run >= mf.STALL
    if mode == "cycle" and unscreened:
        unscreened = ((run - mf.STALL) // K) % 2 == 0
    if mode == "restore" and unscreened:
        unscreened = run < K
    posterior = mf.surrogate(self.pool, observed, predicted, self.prior, not unscreened)
    far = mode in ("widen", "uncertain") and run >= K
    if far and mode == "widen":
        posterior.std = posterior.std * 3
    if far and mode == "uncertain":
        free = [i for i in range(len(self.pool.keeps)) if i not in observed and i not in busy]
        free = np.array(free, dtype=int)
        inside = np.all(self.pool.costs[free] < self.reference[1:], axis=1)
        candidates = free[inside] if inside.any() else free
        self._next = int(candidates[np.argmax(posterior.std[candidates])]) if len(free) else None
    else:
        self._next = mf.choose(self.pool, observed, busy, self.reference, posterior=posterior)
    if unscreened:
        mark_sampled(study, trial, unscreened=True)


mf.ScreenedSampler.before_trial = before_trial
sys.exit(main(sys.argv[1:]))
