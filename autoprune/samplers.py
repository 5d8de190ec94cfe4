"""Samplers by name: each is one `@SAMPLERS.register` function that builds it from a
`SamplerContext`; its docstring's first line is what `autoprune list samplers` shows.

The context's seed is the study seed plus the trials already stored, so a resumed study
continues the search instead of replaying the first proposals of the previous run (which would
only produce look-ups). What a sampler needs beyond the seed (the zero-shot screen) is asked for
lazily, so building a sampler that does not need it costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from autoprune.errors import AutoPruneError
from autoprune.multifidelity import Pool, ScreenedSampler
from autoprune.record import TrialRecord
from autoprune.registry import Registry
from autoprune.screen import all_keep_sets
from autoprune.space import SearchSpace

DEFAULT_SAMPLER = "screened"
STARTUP_TRIALS = 8


@dataclass(frozen=True)
class Screen:
    """What the screened sampler knows before its first trial: the candidate pool with each keep
    set's costs and zero-shot screen, the full model's objective values, the hypervolume
    reference point (accuracy first, then the costs) and prior knowledge from other studies."""

    pool: Pool
    full: np.ndarray
    reference: np.ndarray
    accuracy: int
    # per warm-start study, by name: its keep sets' accuracies (`ScreenedSampler`)
    warm: Mapping[str, dict[tuple[int, ...], float]] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplerContext:
    seed: int
    screen: Callable[[], Screen] | None = None
    space: SearchSpace | None = None

    def screened(self) -> Screen:
        if self.screen is None:
            raise AutoPruneError("this sampler needs the zero-shot screen, which was not given")
        return self.screen()


SAMPLERS: Registry[Callable[[SamplerContext], optuna.samplers.BaseSampler]] = Registry("sampler")


def build_sampler(name: str, ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return SAMPLERS[SAMPLERS.check(name)](ctx)


class Beating(optuna.samplers.BaseSampler):
    """`inner`, recording each trial's first heartbeat as soon as Optuna's `ask` makes it
    RUNNING (in `before_trial`, before any proposal work). Optuna's own heartbeat thread starts
    only after `ask`; a process killed in between left a RUNNING trial with no heartbeat, which
    is never found stale, so a keep set enqueued for it (a retry, a baseline, a continued stop)
    was lost for good. On a storage without heartbeats it is `inner` alone."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner

    def before_trial(self, study, trial) -> None:
        storage = study._storage
        if getattr(storage, "get_heartbeat_interval", lambda: None)():
            storage.record_heartbeat(trial._trial_id)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def describe(name: str) -> str:
    """The one line `autoprune list samplers` shows: the first line of its builder's docstring."""
    return (SAMPLERS[name].__doc__ or "").strip().splitlines()[0]


def _tpe(seed: int, multivariate: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=multivariate, n_startup_trials=STARTUP_TRIALS, constant_liar=True
    )


@SAMPLERS.register("tpe")
def _tpe_multivariate(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """multivariate TPE (joint model of all layer flags)"""
    return _tpe(ctx.seed, True)


@SAMPLERS.register("tpe-independent")
def _tpe_independent(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """TPE with one independent model per layer flag"""
    return _tpe(ctx.seed, False)


@SAMPLERS.register("nsga2")
def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """NSGA-II genetic algorithm, population 16"""
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, population_size=16)


@SAMPLERS.register("random")
def _random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """uniform random keep sets"""
    return optuna.samplers.RandomSampler(seed=ctx.seed)


@SAMPLERS.register("exhaustive")
def _exhaustive(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """every keep set of the space once, in random order; for ground truth"""
    if ctx.space is None:
        raise AutoPruneError("the exhaustive sampler needs the search space, which was not given")
    return EveryKeepSet(ctx.space, ctx.seed)


class EveryKeepSet(optuna.samplers.BaseSampler):
    """Proposes each keep set of `space` once, in an order drawn from `seed`: the first that no
    trial of the study has taken (`taken`). It enumerates keep sets, not the
    per-layer booleans (as Optuna's BruteForceSampler does): in a space narrower than the model
    (`max_kept` 4 of 12 layers) most boolean combinations repair to a keep set already taken:
    building the 793-keep-set table of that space over ETTh1 took 4,096 trials, 3,303 of them
    look-ups, 746 of its 3,007 s. Once every keep set is taken it draws at random (look-ups,
    which end the run)."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        keeps = all_keep_sets(space)
        self.space = space
        self.order = [keeps[i] for i in np.random.default_rng(seed).permutation(len(keeps))]
        self.fallback = optuna.samplers.RandomSampler(seed=seed)
        self._next: tuple[int, ...] | None = None

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def before_trial(self, study: optuna.Study, trial) -> None:
        others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        done = {TrialRecord.of(t).keep_set for t in others if taken(t)}
        self._next = next((k for k in self.order if k not in done), None)

    def sample_independent(self, study, trial, name: str, distribution) -> object:
        if self._next is None:
            return self.fallback.sample_independent(study, trial, name, distribution)
        return self.space.params_of(self._next)[name]


def taken(trial: FrozenTrial) -> bool:
    """Whether `trial` settles its keep set for `EveryKeepSet`: trained (or looked up), being
    trained, stopped at a rung, or failed for a reason of its own (`fail_reason`: proposed
    again, it would fail again). Not a waiting trial, nor one interrupted (Ctrl-C, a killed
    process: a failure with no reason recorded) or pruned without training (a duplicate of a
    keep set another trial trains, one over the study's total): a resumed build trains those."""
    state, record = trial.state, TrialRecord.of(trial)
    return (
        state in (TrialState.COMPLETE, TrialState.RUNNING)
        or (state == TrialState.PRUNED and record.stopped_at is not None)
        or (state == TrialState.FAIL and record.fail_reason is not None)
    )


@SAMPLERS.register("screened")
def _screened(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """multi-fidelity: Bayesian surrogate + EHVI, led by a zero-shot screen where it pays"""
    s = ctx.screened()
    fallback = optuna.samplers.RandomSampler(seed=ctx.seed)
    return ScreenedSampler(s.pool, s.full, s.reference, s.accuracy, fallback, s.warm)


@SAMPLERS.register("gp")
def _gp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """Gaussian-process Bayesian optimisation"""
    return optuna.samplers.GPSampler(seed=ctx.seed, n_startup_trials=STARTUP_TRIALS)
