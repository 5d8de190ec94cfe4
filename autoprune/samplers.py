"""Samplers by name. Each run of a study derives its sampler seed from the study seed and the
number of trials already stored, so a resumed study continues the search instead of replaying
the first proposals of the previous run (which would only produce look-ups)."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from autoprune.errors import UnknownNameError

DEFAULT_SAMPLER = "screened"
STARTUP_TRIALS = 8


def _tpe(seed: int, multivariate: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=multivariate,
        n_startup_trials=STARTUP_TRIALS,
        constant_liar=True,
    )


SAMPLERS: dict[str, tuple[str, Callable[[int], optuna.samplers.BaseSampler]]] = {
    "tpe": ("multivariate TPE (joint model of all layer flags)", lambda s: _tpe(s, True)),
    "tpe-independent": ("TPE with one independent model per layer flag", lambda s: _tpe(s, False)),
    "nsga2": (
        "NSGA-II genetic algorithm, population 16",
        lambda s: optuna.samplers.NSGAIISampler(seed=s, population_size=16),
    ),
    "random": ("uniform random keep sets", lambda s: optuna.samplers.RandomSampler(seed=s)),
    "exhaustive": (
        "every keep set once, in random order (Optuna's BruteForceSampler); for ground truth",
        lambda s: optuna.samplers.BruteForceSampler(seed=s),
    ),
    "screened": (
        "multi-fidelity: zero-shot screen of every keep set + Bayesian surrogate + EHVI",
        lambda s: optuna.samplers.RandomSampler(seed=s),  # replaced once the screen exists
    ),
    "gp": (
        "Gaussian-process Bayesian optimisation",
        lambda s: optuna.samplers.GPSampler(seed=s, n_startup_trials=STARTUP_TRIALS),
    ),
}


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise UnknownNameError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return name


def make_sampler(name: str, seed: int, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    return SAMPLERS[check_sampler(name)][1](seed + trials_so_far)
