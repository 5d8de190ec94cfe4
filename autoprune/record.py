"""What autoprune stores on one trial. Each field is one Optuna user attr of the same name, so
optuna-dashboard and plain `optuna` read a study without autoprune; every module writes and
reads those attrs through `TrialRecord` only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial


@dataclass
class TrialRecord:
    """A trial's attrs; None = not stored. Only what a trial stores appears in its attrs."""

    # what the trial is about; `baseline` and `full_budget` come with an enqueued trial
    keep: list[int] | None = None
    sampled_keep: list[int] | None = None  # what the sampler proposed, before repair
    baseline: str | None = None  # a one-shot baseline's kind (`baselines.py`)
    full_budget: bool | None = None  # goes to the full budget, never stopped at a rung
    # why it was not trained: another trial's keep set, or the study's total was reached
    claimed: bool | None = None  # passed its first check and trains its keep set
    # passed the study total's check, or is passing it (`objective.within_total`); False: it
    # yielded to an earlier trial that was passing it too
    counted: bool | None = None
    lookup_of: int | None = None  # the trained trial whose values it repeats
    duplicate_of: int | None = None  # the running trial that trains its keep set
    over_total: int | None = None  # the study held this many trained keep sets meanwhile
    stopped_at: int | None = None  # stopped at this rung: the re-alignment steps it got
    # several warm-start studies: the one whose prior mean the screened sampler followed when
    # it proposed this trial (its name)
    warm_prior: str | None = None
    # proposed after the front had stalled (`multifidelity.STALL` trained trials in a row added
    # no hypervolume), by the screened sampler's surrogate without the screen
    unscreened: bool | None = None
    fail_reason: str | None = None
    # measured on the validation split (objective.run_trial)
    mase: float | None = None
    crps: float | None = None
    mse: float | None = None
    mae: float | None = None
    params: int | None = None
    latency_ms: float | None = None  # predicted by the study's latency profile
    latency_measured_ms: float | None = None
    latency_off_profile: bool | None = None
    windows: int | None = None
    datasets: dict | None = None  # several datasets: each one's metrics
    realign_steps: int | None = None
    realign_loss_first: float | None = None
    realign_loss_last: float | None = None
    rungs: dict | None = None  # steps -> the rung's value and evaluation seconds
    timing: dict | None = None  # seconds per part: prune, realign, rungs, evaluate, latency
    # how and where it ran
    wall_s: float | None = None
    device: str | None = None
    seed: int | None = None
    realign_lr: float | None = None
    realign_batch_size: int | None = None
    realign_mode: str | None = None
    worker: str | None = None  # host:pid of the process that trained it

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """A stored trial's record; attrs autoprune does not know are left out."""
        attrs = trial.user_attrs
        return cls(**{name: attrs[name] for name in FIELDS if name in attrs})

    def attrs(self) -> dict[str, Any]:
        """The user attrs this record stores (None fields are not stored)."""
        values = ((name, getattr(self, name)) for name in FIELDS)
        return {name: value for name, value in values if value is not None}

    def write(self, trial: optuna.Trial) -> None:
        for name, value in self.attrs().items():
            trial.set_user_attr(name, value)

    def metric(self, name: str) -> float:
        """A validation metric by name (`metrics.METRICS`)."""
        return getattr(self, name)

    def queued(self) -> TrialRecord:
        """Only what an enqueued trial came with (`baseline`, `full_budget`): what a retry of
        the trial starts from. Anything its run stored (its claim, a rung) is not carried over."""
        return TrialRecord(baseline=self.baseline, full_budget=self.full_budget)

    @property
    def keep_set(self) -> tuple[int, ...]:
        """The keep set as a tuple (() before the objective stored one)."""
        return tuple(self.keep or ())


FIELDS = tuple(field.name for field in dataclasses.fields(TrialRecord))


def mark(trial: optuna.Trial, **fields: Any) -> None:
    """Store some fields of a running trial's record now (`mark(trial, claimed=True)`)."""
    TrialRecord(**fields).write(trial)


def mark_sampled(study: optuna.Study, trial: FrozenTrial, **fields: Any) -> None:
    """`mark` for a running trial known as a FrozenTrial (a sampler's `before_trial`, the
    study total's check), so the fields go through the study's storage."""
    for name, value in TrialRecord(**fields).attrs().items():
        study._storage.set_trial_user_attr(trial._trial_id, name, value)
