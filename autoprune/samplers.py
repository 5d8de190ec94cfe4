"""Samplers by name: each is one `@sampler` function that builds it from a `SamplerContext`.

The context's seed is the study seed plus the trials already stored, so a resumed study
continues the search instead of replaying the first proposals of the previous run (which would
only produce look-ups). What a sampler needs beyond the seed (the zero-shot screen) is asked for
lazily, so building a sampler that does not need it costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna

from autoprune.errors import AutoPruneError, UnknownNameError
from autoprune.multifidelity import Pool, ScreenedSampler

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
    warm: dict[tuple[int, ...], float] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplerContext:
    seed: int
    screen: Callable[[], Screen] | None = None

    def screened(self) -> Screen:
        if self.screen is None:
            raise AutoPruneError("this sampler needs the zero-shot screen, which was not given")
        return self.screen()


@dataclass(frozen=True)
class Entry:
    description: str
    build: Callable[[SamplerContext], optuna.samplers.BaseSampler]


SAMPLERS: dict[str, Entry] = {}


def sampler(name: str, description: str):
    """Register a sampler: `@sampler("name", "one line for autoprune list samplers")`."""

    def register(build: Callable[[SamplerContext], optuna.samplers.BaseSampler]):
        SAMPLERS[name] = Entry(description, build)
        return build

    return register


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise UnknownNameError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return name


def build_sampler(name: str, ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return SAMPLERS[check_sampler(name)].build(ctx)


def _tpe(seed: int, multivariate: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=multivariate, n_startup_trials=STARTUP_TRIALS, constant_liar=True
    )


@sampler("tpe", "multivariate TPE (joint model of all layer flags)")
def _tpe_multivariate(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return _tpe(ctx.seed, True)


@sampler("tpe-independent", "TPE with one independent model per layer flag")
def _tpe_independent(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return _tpe(ctx.seed, False)


@sampler("nsga2", "NSGA-II genetic algorithm, population 16")
def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, population_size=16)


@sampler("random", "uniform random keep sets")
def _random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


@sampler(
    "exhaustive",
    "every keep set once, in random order (Optuna's BruteForceSampler); for ground truth",
)
def _exhaustive(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.BruteForceSampler(seed=ctx.seed)


@sampler(
    "screened", "multi-fidelity: zero-shot screen of every keep set + Bayesian surrogate + EHVI"
)
def _screened(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    s = ctx.screened()
    fallback = optuna.samplers.RandomSampler(seed=ctx.seed)
    return ScreenedSampler(s.pool, s.full, s.reference, s.accuracy, fallback, s.warm)


@sampler("gp", "Gaussian-process Bayesian optimisation")
def _gp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=ctx.seed, n_startup_trials=STARTUP_TRIALS)
