"""Local backend: Optuna's own optimize loop, one trial at a time, in this process.

`--trials N` is the number of trained keep sets the study should reach, counted in the shared
storage, so a resumed run or a second process on the same storage stops at the same total.
Optuna runs heartbeats during each trial and fails stale trials (left RUNNING by a crash) before
the next one; the storage's retry callback re-queues their keep sets once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
from optuna.trial import TrialState

from autoprune.errors import StudyError
from autoprune.objective import TrialContext, make_objective
from autoprune.study import trained_trials

MAX_FAILURES_IN_A_ROW = 3
MAX_LOOKUPS_IN_A_ROW = 200


def run(
    study: optuna.Study,
    ctx: TrialContext,
    target: int,
    order: Sequence[int],
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial | None], None] = lambda s, t: None,
) -> str:
    """Run trials until the study holds `target` trained keep sets; returns why it stopped."""
    objective = make_objective(ctx, order)
    failures = lookups = 0
    while True:
        done = len(trained_trials(study))
        if done >= target:
            return "reached"
        if done >= ctx.space.size:
            return "exhausted"
        finished: list[optuna.trial.FrozenTrial] = []
        study.optimize(
            objective,
            n_trials=1,
            catch=(Exception,),
            callbacks=[lambda _, trial, done=finished: done.append(trial)],
        )
        last = finished[-1] if finished else None
        on_trial(study, last)
        if last is None:
            continue
        failures = failures + 1 if last.state == TrialState.FAIL else 0
        lookups = lookups + 1 if "lookup_of" in last.user_attrs else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            reason = last.user_attrs.get("fail_reason", "unknown")
            raise StudyError(
                f"{failures} trials in a row failed, last with {reason}; the study keeps its "
                "finished trials - fix the cause and run the same command again"
            )
        if lookups >= MAX_LOOKUPS_IN_A_ROW:
            return "stalled"
