"""The rung's calibration with a spread that grows with the share of layers dropped, the
variants tried (docs/search-efficiency.md, "Exploring further when the front stalls long").
From the repository root:

    python studies/bench/2026-12-05/explore/tried/calibration_by_size.py MODE bench replay ARGS...

d = log full-budget accuracy - log rung value ~ N(mu, (sigma (2 x share dropped)^p)^2), p in
{0, 1, 2} by likelihood (stop 41's `het012`). MODE: `stalled`, the stopped keep sets' predictions
use it once the front has stalled (`multifidelity.STALL`); `predict`, always (the stop rule
unchanged); `all`, the predictions and the stop rule. Proposals otherwise as stop 47's default
(`ScreenedSampler.before_trial` written out here from its `observations` on).
"""

import sys

import numpy as np
from optuna.trial import TrialState

import autoprune.multifidelity as mf
from autoprune.bench import replay
from autoprune.cli import main
from autoprune.record import TrialRecord, mark_sampled
from autoprune.study import is_trained

mode = sys.argv.pop(1)
if mode not in ("stalled", "predict", "all"):
    sys.exit(f"unknown mode {mode!r}")
POWERS = (0.0, 1.0, 2.0)


class BySize:
    def __init__(self, mu: float, sigma: float, power: float) -> None:
        self.mu, self.sigma, self.power = mu, sigma, power

    @classmethod
    def fit(cls, triples):
        if len(triples) < mf.MIN_PAIRS:
            return None
        rung, full, share = (np.array(column) for column in zip(*triples, strict=True))
        d, n, best = np.log(full) - np.log(rung), len(triples), None
        for power in POWERS:
            scale = (2 * share) ** power
            weight = 1 / scale**2
            mu = (weight * d).sum() / weight.sum()
            var = (((d - mu) / scale) ** 2).mean()
            likelihood = -0.5 * n * np.log(var) - np.log(scale).sum()
            if best is None or likelihood > best[0]:
                sigma = np.sqrt(var * n / (n - 1) * (1 + 1 / n))  # widened as `Calibration`
                best = (likelihood, mu, sigma, power)
        return cls(*best[1:])

    def spread(self, share: float) -> float:
        return self.sigma * (2 * share) ** self.power

    def predict(self, value: float, sigmas: float, share: float) -> float:
        return float(value * np.exp(self.mu - sigmas * self.spread(share)))


def by_size(trials, full, accuracy, num_layers):
    triples = {}
    for t in trials:
        if not is_trained(t):
            continue
        record = TrialRecord.of(t)
        share = 1 - len(record.keep_set) / num_layers
        for steps, rung in (record.rungs or {}).items():
            value = (rung["mase"], t.values[accuracy] / full[accuracy], share)
            triples.setdefault(int(steps), []).append(value)
    fitted = {steps: BySize.fit(t) for steps, t in triples.items()}
    return {steps: c for steps, c in fitted.items() if c is not None}


def before_trial(self, study, trial):
    states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
    trials = study.get_trials(deepcopy=False, states=states)
    observed, busy, predicted = self.observations(trials, trial.number)
    stalled = self.pool.screened and mf.stalled_for(trials, self.full, self.reference) >= mf.STALL
    if mode != "stalled" or stalled:  # the stopped keep sets predicted by size instead
        num_layers = self.pool.layers.shape[1]
        calibrated = by_size(trials, self.full, self.accuracy, num_layers)
        predicted = {}
        for other in trials:
            record = TrialRecord.of(other)
            i = self.index.get(record.keep_set)
            steps = record.stopped_at
            if i is None or other.state != TrialState.PRUNED or steps not in calibrated:
                continue
            share = 1 - len(record.keep_set) / num_layers
            mean = calibrated[steps].predict(mf.rung_value(other, steps), 0.0, share)
            predicted[i] = (mean, (mean * calibrated[steps].spread(share)) ** 2)
    posterior = mf.surrogate(self.pool, observed, predicted, self.prior, not stalled)
    self._next = mf.choose(self.pool, observed, busy, self.reference, posterior=posterior)
    if stalled:
        mark_sampled(study, trial, unscreened=True)


def stop(self, table, study, i, values):
    """`replay.FrontStop` with the calibration by size."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    steps = mf.stop_rung(list(table.rungs))
    full = np.ones(table.values.shape[1])
    calibration = by_size(trials, full, 0, table.num_layers).get(steps)
    if calibration is None:
        return None
    share = 1 - len(table.keeps[i]) / table.num_layers
    candidate = np.array(values, dtype=float)
    candidate[0] = calibration.predict(float(table.rungs[steps][i]), mf.OPTIMISM, share)
    if not np.all(candidate < table.reference):
        return steps
    front = np.array([t.values for t in trials if is_trained(t)])
    grows = mf.hypervolume(np.vstack([front, candidate]), table.reference) > mf.hypervolume(
        front, table.reference
    )
    return None if grows else steps


mf.ScreenedSampler.before_trial = before_trial
if mode == "all":
    replay.FrontStop.__call__ = stop
sys.exit(main(sys.argv[1:]))
