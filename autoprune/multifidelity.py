"""The `screened` sampler: zero-shot screening as a cheap fidelity, real trials where they pay.

Every keep set of a candidate pool (`Pool`) is screened zero-shot once; a Gaussian-process
surrogate of re-aligned accuracy (`fit_surrogate`) then proposes the candidate with the largest
expected hypervolume improvement (`choose`). The same module holds the rule that stops a
multi-fidelity trial at a rung (`still_promising`), since both read the rungs' calibration.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from autoprune.pareto import hypervolume, non_dominated
from autoprune.record import TrialRecord, mark_sampled
from autoprune.study import is_trained

MIN_PAIRS = 4  # keep sets seen at a rung and at the full budget before any is stopped there
# a keep set goes on if its prediction, this many sigmas better, could add volume; the keep sets
# of a true front are often late bloomers (they gain more from the rung to the full budget than
# the calibration's mean), so 1.5, not 1: in pairs over five tables it needed 0.72x-0.94x the
# compute to 95% on three and 1.07x-1.08x on two (docs/search-efficiency.md)
OPTIMISM = 1.5

HERMITE = np.polynomial.hermite_e.hermegauss(24)


@dataclass
class Pool:
    """Candidate keep sets (the whole space when it is small enough, else a random sample
    stratified by size) with everything known before training them: costs (n, c) normalised
    by the full model, the zero-shot screen (n,), which layers each keeps (n, L) and the screen
    as z-scores overall and within its size (n, 2)."""

    keeps: list[tuple[int, ...]]
    costs: np.ndarray
    screen: np.ndarray
    layers: np.ndarray
    screen_z: np.ndarray
    groups: list[np.ndarray]  # indices of candidates sharing a cost vector

    @classmethod
    def build(
        cls,
        keeps: Sequence[tuple[int, ...]],
        costs: np.ndarray,
        screen: np.ndarray,
        num_layers: int,
    ) -> Pool:
        keeps = [tuple(k) for k in keeps]
        kept = np.array([len(k) for k in keeps], dtype=float)
        log_screen = np.log(np.asarray(screen, dtype=float))
        z_all = (log_screen - log_screen.mean()) / (log_screen.std() or 1.0)
        z_size = np.zeros_like(z_all)
        for k in np.unique(kept):
            members = kept == k
            spread = log_screen[members].std() or 1.0
            z_size[members] = (log_screen[members] - log_screen[members].mean()) / spread
        layers = np.array([[layer in k for layer in range(num_layers)] for k in keeps], float)
        _, group_of = np.unique(np.round(costs, 9), axis=0, return_inverse=True)
        groups = [np.flatnonzero(group_of.ravel() == g) for g in range(group_of.max() + 1)]
        return cls(
            keeps,
            np.asarray(costs, float),
            np.asarray(screen, float),
            layers,
            np.column_stack([z_all, z_size]),
            groups,
        )

    def kernel(
        self, a: np.ndarray, b: np.ndarray, length: float, screen_weight: float, power: float
    ):
        """Covariance between candidates `a` and `b`: Hamming distance between keep sets (as a
        share of the layers) and squared distance between screen z-scores, each candidate's
        standard deviation scaled by (2 x the share of layers it drops) ** power: a keep set
        that drops more strays further from the full model's accuracy (power 0: as far)."""
        hamming = np.abs(self.layers[a][:, None, :] - self.layers[b][None, :, :]).mean(-1)
        screen = ((self.screen_z[a][:, None, :] - self.screen_z[b][None, :, :]) ** 2).sum(-1)
        scale = self.spread(power)
        return (
            scale[a][:, None]
            * scale[b][None, :]
            * np.exp(-4 * hamming / length - screen_weight * screen / 4)
        )

    @property
    def screened(self) -> bool:
        """Whether the screen tells keep sets apart (not when it was skipped or turned off)."""
        return bool(np.any(self.screen_z))

    def prior_variance(self, length: float, screen_weight: float, power: float) -> np.ndarray:
        """Each candidate's prior variance, in units of the amplitude: the kernel's diagonal
        (`kernel` of a candidate with itself), without building the whole matrix."""
        return self.spread(power) ** 2

    def spread(self, power: float) -> np.ndarray:
        """Each candidate's prior standard deviation relative to a keep set that drops half
        the layers: (2 x the share it drops) ** power."""
        return (2 * (1 - self.layers.mean(-1))) ** power


@dataclass
class Posterior:
    mean: np.ndarray
    std: np.ndarray
    # several warm-start studies: the row of the prior it follows (None: one study or none,
    # or nothing trained yet, when it follows their mean)
    prior: int | None = None


# hyperparameter grid searched by marginal likelihood: kernel length over keep sets, weight of
# the screen, how the prior spread grows with the layers dropped (`Pool.spread`), signal variance
# and noise variance (accuracy is normalised by the full model's); the length and screen-weight
# values are the measured ones: shorter lengths and weaker screen weights did worse (offered 0,
# marginal likelihood takes it, and the search needed 1.4x-1.7x the compute to 95% on three of
# six tables); a spread that grows with the layers dropped needed 0.74x the compute to 95% over
# five tables (docs/search-efficiency.md)
LENGTHS = (2.0, 4.0)
SCREEN_WEIGHTS = (2.0, 4.0)
AMPLITUDES = (0.001, 0.004, 0.016)
NOISES = (1e-4, 1e-3, 4e-3)
POWERS = (0.0, 1.0, 2.0)  # 0: every keep set as far from the prior mean as any other
# trained keep sets in a row that added no hypervolume, after which the sampler proposes as if
# there were no screen (its weight in the kernel 0) until one adds some: where the screen and
# the first trials agree on a region (e.g. "keep layer 0"), the screened surrogate goes on
# proposing near-ties from it while keep sets that would add volume lie outside it. 12 siblings
# in pairs on seven tables: 0.93x the compute to 95% (geometric mean; 0.79x-1.05x), 0.90x to the
# whole front; 10 and 15 trials did a little less (0.95x, 0.98x), and widening the posterior
# or proposing its most uncertain keep set instead did worse (docs/search-efficiency.md)
STALL = 6
# trained keep sets in a row that added no hypervolume, after which the screen is back (until
# one adds some): 30 proposals without it have stalled too, so they are no better a guide, and
# the screen's region is worth proposing from again. In the first 100 trials of the seven
# tables above it changes nearly nothing (1.00x to 95%, 0.99x to the whole front); on the ILI
# 12-layer table, where the default held 0.588 of the hypervolume from trial 50 to 300, it
# reached 95% at trial 132, and under noise 4 of 12 siblings did within 300 trials, not 1
# (docs/search-efficiency.md)
SCREEN_BACK = 36
# an accuracy (normalised by the full model's) is fitted as at most this many times the full
# model's. Past it a keep set is broken, not a little worse: Chronos-Bolt without a decoder block
# forecasts from the series' scale alone, 15-80x the full model's error. The hypervolume tells
# it from no other keep set past the reference (1.1), but fitted as measured one such value
# makes every keep set near it look bad, fronts' keep sets one layer away among them. No keep
# set of the 43 Moirai tables in studies/bench goes past 2.95, and the default's cold replays of
# the 20 with any past 2 were fitted to at most 2.84 (a rung's prediction), so they do not move;
# 2 would change the fit on 22 of the 43 (docs/search-efficiency.md)
BROKEN = 3.0


@dataclass
class Calibration:
    """Full-budget accuracy (normalised by the full model's) from a rung's fidelity value:
    log(full) = log(rung) + d, with d ~ N(mu, sigma^2) over keep sets seen at both."""

    mu: float
    sigma: float

    @classmethod
    def fit(cls, pairs: Sequence[tuple[float, float]]) -> Calibration | None:
        if len(pairs) < MIN_PAIRS:
            return None
        d = np.log([full for _, full in pairs]) - np.log([rung for rung, _ in pairs])
        # the spread of a new keep set's d: sample spread, widened for the sample's size
        return cls(float(d.mean()), float(d.std(ddof=1) * np.sqrt(1 + 1 / len(d))))

    def predict(self, value: float, sigmas: float = 0.0) -> float:
        return float(value * np.exp(self.mu - sigmas * self.sigma))


def stop_rung(rungs: Sequence[int]) -> int:
    """The rung at which keep sets may be stopped, and the only one a search's trial records
    (`TrialContext.rungs`): the last (a third of the budget). A ground-truth table records every
    rung, but the 3-step rung ranks keep sets too poorly to stop on: stopping there too lost
    keep sets of the true front (docs/search-efficiency.md)."""
    return max(rungs)


def stopped_before(trials: Sequence[FrozenTrial], keep: tuple[int, ...]) -> bool:
    """Whether `keep` was stopped at a rung once already: proposed again, it goes to the full
    budget, so every keep set stops at most once and a study always reaches its target."""
    records = map(TrialRecord.of, trials)
    return any(r.stopped_at is not None and r.keep_set == keep for r in records)


def rung_value(trial: FrozenTrial, steps: int) -> float | None:
    rung = (TrialRecord.of(trial).rungs or {}).get(str(steps))
    return None if rung is None else rung["mase"]


def calibrations(
    trials: Sequence[FrozenTrial], full: np.ndarray, accuracy: int
) -> dict[int, Calibration]:
    """Per rung (steps), the calibration learned from the completed trials that recorded it."""
    pairs: dict[int, list[tuple[float, float]]] = {}
    for t in trials:
        if not is_trained(t):
            continue
        for steps, rung in (TrialRecord.of(t).rungs or {}).items():
            pairs.setdefault(int(steps), []).append(
                (rung["mase"], t.values[accuracy] / full[accuracy])
            )
    fitted = {steps: Calibration.fit(p) for steps, p in pairs.items()}
    return {steps: c for steps, c in fitted.items() if c is not None}


def still_promising(
    trials: Sequence[FrozenTrial],
    steps: int,
    value: float,
    point: np.ndarray,
    full: np.ndarray,
    accuracy: int,
    reference: np.ndarray,
) -> bool:
    """Whether a keep set at a rung could still add hypervolume at the full budget.

    `point` is its objective vector normalised by the full model's (the accuracy entry is
    ignored: costs are known before training). Its full-budget accuracy is predicted from the
    rung value by the rung's calibration, OPTIMISM sigmas on the hopeful side; it goes on if
    that point would not be dominated by the front of the completed trials. Until MIN_PAIRS keep
    sets have been seen at this rung and at the full budget, every keep set goes on."""
    calibration = calibrations(trials, full, accuracy).get(steps)
    if calibration is None:
        return True
    done = [t for t in trials if is_trained(t)]
    candidate = np.array(point, dtype=float)
    candidate[accuracy] = calibration.predict(value, OPTIMISM)
    if not np.all(candidate < reference):
        return False
    front = np.array([t.values for t in done]) / full
    return bool(
        hypervolume(np.vstack([front, candidate]), reference) > hypervolume(front, reference)
    )


def stalled_for(trials: Sequence[FrozenTrial], full: np.ndarray, reference: np.ndarray) -> int:
    """How many trained trials in a row, the latest last (`trials` in a study's order), added no
    hypervolume to the front of the trained trials before them: a point adds some if it lies
    inside the reference box and no earlier point is at least as good on every objective."""
    done = [t for t in trials if is_trained(t)]
    points = np.array([t.values for t in done], dtype=float).reshape(-1, len(full)) / full
    run = 0
    for i, point in enumerate(points):
        covered = np.all(points[:i] <= point, axis=1).any()
        run = run + 1 if covered or not np.all(point < reference) else 0
    return run


def fit_surrogate(
    pool: Pool,
    observed: dict[int, float],
    noise_of: dict[int, float] | None = None,
    prior: np.ndarray | None = None,
    screened: bool = True,
) -> Posterior:
    """GP regression of (accuracy - prior mean); the prior mean is the full model's accuracy
    for every keep set until trials say otherwise, or what a warm start learned elsewhere.
    `noise_of` adds variance to observations that are predictions (keep sets stopped at a
    rung) rather than measurements. `prior` (n,) or, from several warm-start studies, one row
    each (m, n): marginal likelihood picks the row, beside the kernel's hyperparameters, so the
    study most like this one leads once trials can tell (before any, their mean). Averaging the
    studies instead needed 1.3x-3.2x the compute of one study in replays, more than a cold start
    (docs/search-efficiency.md).

    The kernel (`Pool.kernel`) reads which layers a keep set keeps (Hamming distance) and its
    screen score, overall and within its size (squared-exponential on the two z-scores), and
    lets keep sets that drop more layers stray further from the prior mean (re-aligned accuracy
    varies far more among small keep sets than among large ones, so a stationary kernel is
    too sure of the small keep sets it has not seen and spends trials on near-ties among the
    large ones); its hyperparameters are chosen by marginal likelihood on every call, i.e.
    after every trial.
    How well the screen predicts re-aligned accuracy varies by model and dataset (measured by
    `autoprune bench truth`), so it must not be trusted blindly: it enters the kernel with a
    weight learned from the re-aligned trials, so it counts for as much as they say it predicts;
    `screened=False`: its weight is 0 (the sampler's proposals once the front stalls).
    An accuracy past BROKEN times the full model's is fitted as BROKEN."""
    priors = np.ones((1, len(pool.keeps))) if prior is None else np.atleast_2d(prior)
    several = len(priors) > 1
    idx = np.array(sorted(observed), dtype=int)
    if len(idx) == 0:
        return Posterior(priors.mean(0), np.full(priors.shape[1], 0.1))
    accuracy = np.minimum([observed[i] for i in idx], BROKEN)
    extra = np.diag([(noise_of or {}).get(i, 0.0) for i in idx])
    best = None
    weights = SCREEN_WEIGHTS if screened else (0.0,)
    for length, weight, power in itertools.product(LENGTHS, weights, POWERS):
        gram = pool.kernel(idx, idx, length, weight, power)
        for amplitude in AMPLITUDES:
            for noise in NOISES:
                try:
                    chol = np.linalg.cholesky(amplitude * gram + noise * np.eye(len(idx)) + extra)
                except np.linalg.LinAlgError:
                    continue
                for row, mean in enumerate(priors):
                    y = accuracy - mean[idx]
                    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
                    evidence = -0.5 * y @ alpha - np.log(np.diag(chol)).sum()
                    if best is None or evidence > best[0]:
                        setting = (length, weight, power, amplitude, noise)
                        best = (evidence, setting, chol, alpha, row)
    _, (length, weight, power, amplitude, noise), chol, alpha, row = best
    mean = priors[row]
    cross = amplitude * pool.kernel(np.arange(len(pool.keeps)), idx, length, weight, power)
    explained = np.linalg.solve(chol, cross.T)
    var = amplitude * pool.prior_variance(length, weight, power) + noise - (explained**2).sum(0)
    return Posterior(
        mean + cross @ alpha, np.sqrt(np.maximum(var, 1e-12)), row if several else None
    )


def expected_improvement(
    pool: Pool, observed: dict[int, float], posterior: Posterior, reference: np.ndarray
) -> np.ndarray:
    """EHVI of every candidate, integrating its accuracy over the posterior (Gauss-Hermite).
    Costs (parameters, predicted latency) are known exactly, so only the accuracy is integrated,
    and candidates sharing a cost vector share one improvement curve: scoring thousands of
    candidates per trial stays cheap."""
    idx = np.array(sorted(observed), dtype=int)
    points = (
        np.column_stack([[observed[i] for i in idx], pool.costs[idx]])
        if len(idx)
        else np.zeros((0, 1 + pool.costs.shape[1]))
    )
    front = points[non_dominated(points)] if len(points) else points
    base = hypervolume(front, reference)
    nodes, weights = HERMITE
    weights = weights / weights.sum()
    # a candidate's gain is piecewise linear in its accuracy, with kinks only at the front's
    # accuracies: evaluated there and at both ends of the nodes' range, interpolation is exact
    low = float(min(posterior.mean.min() - nodes.max() * posterior.std.max(), 0.0))
    inside = front[(front[:, 0] > low) & (front[:, 0] < reference[0]), 0]
    knots = np.unique(np.r_[low, inside, reference[0]])
    ehvi = np.zeros(len(pool.keeps))
    for members in pool.groups:
        cost = pool.costs[members[0]]
        if np.any(cost >= reference[1:]):
            continue
        curve = np.array(
            [hypervolume(np.vstack([front, np.r_[y, cost]]), reference) - base for y in knots]
        )
        ys = posterior.mean[members, None] + posterior.std[members, None] * nodes[None, :]
        ehvi[members] = np.interp(ys, knots, curve, right=0.0) @ weights
    return ehvi


def surrogate(
    pool: Pool,
    observed: dict[int, float],
    predicted: dict[int, tuple[float, float]] | None = None,
    prior: np.ndarray | None = None,
    screened: bool = True,
) -> Posterior:
    """`fit_surrogate` over the trained keep sets (`observed`) and those stopped at a rung
    (`predicted`: predicted accuracy and its variance, which enters as noise)."""
    predicted = predicted or {}
    everything = {**{i: mean for i, (mean, _) in predicted.items()}, **observed}
    noise = {i: var for i, (_, var) in predicted.items() if i not in observed}
    return fit_surrogate(pool, everything, noise, prior, screened)


def choose(
    pool: Pool,
    observed: dict[int, float],
    busy: set[int],
    reference: np.ndarray,
    predicted: dict[int, tuple[float, float]] | None = None,
    prior: np.ndarray | None = None,
    posterior: Posterior | None = None,
) -> int | None:
    """Index of the next candidate to re-align; None when every candidate is taken.
    `predicted`: keep sets stopped at a rung, (predicted accuracy, its variance); they teach
    the surrogate and are not on the front. They stay candidates: one whose expected
    improvement, uncertainty included, beats every new keep set's is promoted to the full
    budget (a keep set stopped by a rung that misjudged it is not left until the pool is
    exhausted). `posterior`: the `surrogate` of these, when the caller fitted it already."""
    free = np.array([i for i in range(len(pool.keeps)) if i not in observed and i not in busy])
    if len(free) == 0:
        return None
    posterior = posterior or surrogate(pool, observed, predicted, prior)
    gain = expected_improvement(pool, observed, posterior, reference)[free]
    order = np.lexsort((pool.screen[free], -gain))
    return int(free[order[0]])


class ScreenedSampler(optuna.samplers.BaseSampler):
    """Optuna sampler over the per-layer booleans that proposes `choose`'s keep set.

    Trials it did not propose (enqueued seeds, re-queued crashes, other samplers earlier in the
    study) still count as observations, and RUNNING trials are never proposed twice. Keep sets
    stopped at a rung count as predictions (their rung value through the rung's calibration,
    with its spread as noise). Once STALL trained trials in a row add no hypervolume, it
    proposes without the screen until one adds some, or until SCREEN_BACK in a row have added
    none, and says so on each trial (`unscreened`).
    `warm`: per finished study of the same model elsewhere, by its
    name, its keep sets and accuracies (normalised by its own full model); the surrogate fitted
    to each is a prior mean for this study (`fit_surrogate` picks among several), prior
    knowledge only - they are never results of this study.
    """

    def __init__(
        self,
        pool: Pool,
        full: np.ndarray,
        reference: np.ndarray,
        accuracy: int,
        fallback: optuna.samplers.BaseSampler | None = None,
        warm: Mapping[str, dict[tuple[int, ...], float]] | None = None,
    ) -> None:
        self.pool, self.full, self.reference = pool, np.asarray(full, float), reference
        self.accuracy = accuracy
        self.index = {k: i for i, k in enumerate(pool.keeps)}
        self.fallback = fallback or optuna.samplers.RandomSampler()
        known = {
            name: {self.index[k]: v for k, v in w.items() if k in self.index}
            for name, w in (warm or {}).items()
        }
        self.warm_names = [name for name, k in known.items() if k]  # one per row of the prior
        priors = [fit_surrogate(pool, k).mean for k in known.values() if k]
        self.prior = np.array(priors) if priors else None

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def observations(
        self, trials: Sequence[FrozenTrial], number: int
    ) -> tuple[dict[int, float], set[int], dict[int, tuple[float, float]]]:
        """What `trials` (COMPLETE, RUNNING and PRUNED) say of the pool's keep sets, but for
        trial `number`'s: the trained ones' accuracy (normalised by the full model's), those
        being trained, and those stopped at a rung as (predicted accuracy, its variance)."""
        observed, busy, predicted = {}, set(), {}
        calibrated = calibrations(trials, self.full, self.accuracy)
        for other in trials:
            record = TrialRecord.of(other)
            i = self.index.get(record.keep_set)
            if i is None or other.number == number:
                continue
            if other.state == TrialState.COMPLETE:
                observed[i] = other.values[self.accuracy] / self.full[self.accuracy]
            elif other.state == TrialState.RUNNING:
                busy.add(i)
            elif (steps := record.stopped_at) in calibrated:
                mean = calibrated[steps].predict(rung_value(other, steps))
                predicted[i] = (mean, (mean * calibrated[steps].sigma) ** 2)
        return observed, busy, predicted

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
        )
        observed, busy, predicted = self.observations(trials, trial.number)
        run = stalled_for(trials, self.full, self.reference) if self.pool.screened else 0
        stalled = STALL <= run < SCREEN_BACK
        posterior = surrogate(self.pool, observed, predicted, self.prior, not stalled)
        self._next = choose(self.pool, observed, busy, self.reference, posterior=posterior)
        if stalled:
            mark_sampled(study, trial, unscreened=True)
        if posterior.prior is not None:  # several warm-start studies: say whose prior led
            mark_sampled(study, trial, warm_prior=self.warm_names[posterior.prior])

    def sample_independent(self, study, trial, name: str, distribution) -> object:
        if self._next is None or not isinstance(distribution, CategoricalDistribution):
            return self.fallback.sample_independent(study, trial, name, distribution)
        layer = int(name.rsplit("_", 1)[1])
        return layer in self.pool.keeps[self._next]
