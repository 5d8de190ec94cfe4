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

from autoprune.errors import AutoPruneError
from autoprune.multifidelity import Pool, ScreenedSampler
from autoprune.registry import Registry

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
    """every keep set once, in random order (Optuna's BruteForceSampler); for ground truth"""
    return optuna.samplers.BruteForceSampler(seed=ctx.seed)


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
