"""A study opened for work: what `options.prepare` resolved, passed to every later step."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import optuna

from autoprune.data import Series
from autoprune.objective import TrialContext


@dataclass
class Prepared:
    """A study opened for work, with everything its trials need."""

    name: str
    study: optuna.Study
    ctx: TrialContext
    settings: dict
    sampler: str
    rule: str
    # per warm-start study, by name: its keep sets' accuracies
    warm: dict[str, dict[tuple[int, ...], float]] = dataclasses.field(default_factory=dict)
    holdout: dict[str, Series] = dataclasses.field(default_factory=dict)
