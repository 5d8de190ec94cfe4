"""Local backend: Optuna's own optimize loop, one trial at a time, in this process.

Its stop rules (`Streaks`, `stop_reason`) are every backend's, so all stop for the same reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from autoprune.errors import StudyError
from autoprune.objective import TrialContext, make_objective
from autoprune.record import TrialRecord
from autoprune.space import SearchSpace
from autoprune.study import compute_spent, search_seconds, trained_trials

MAX_FAILURES_IN_A_ROW = 3
MAX_LOOKUPS_IN_A_ROW = 200


@dataclass
class Streaks:
    """Failures and look-ups in a row: the two ways a study stops making progress. Every backend
    feeds it each finished trial, so they all stop for the same reasons."""

    failures: int = 0
    lookups: int = 0

    def update(self, trial: FrozenTrial) -> str | None:
        """'stalled' after too many look-ups in a row; raises after too many failures."""
        self.failures = self.failures + 1 if trial.state == TrialState.FAIL else 0
        record = TrialRecord.of(trial)
        self.lookups = self.lookups + 1 if record.lookup_of is not None else 0
        if self.failures >= MAX_FAILURES_IN_A_ROW:
            reason = record.fail_reason or "unknown"
            raise StudyError(
                f"{self.failures} trials in a row failed, last with {reason}; the study keeps its "
                "finished trials - fix the cause and run the same command again"
            )
        return "stalled" if self.lookups >= MAX_LOOKUPS_IN_A_ROW else None


def stop_reason(
    study: optuna.Study,
    space: SearchSpace,
    target: int,
    in_flight: int = 0,
    compute: float | None = None,
) -> str | None:
    """Why no further trial should start: 'exhausted' once the trained keep sets (plus those
    still being trained) cover the whole space, 'reached' once they make `target`, 'budget' once
    the study's search compute (`search_seconds`, all runs) is `compute` seconds or more - after
    its first trained keep set, so a study always has one. Trials still under way (several Ray
    workers, or processes sharing the study) count as much as the study's trials so far took on
    average, so workers do not start trials the budget cannot pay for: it is overshot by about
    one trial, as one process overshoots it."""
    trained = len(trained_trials(study))
    done = trained + in_flight
    if done >= space.size:
        return "exhausted"
    if done >= target:
        return "reached"
    if compute is not None and trained:
        spent = search_seconds(study)
        if in_flight:  # several workers: one process alone has none when it asks
            ran = [r for r in compute_spent(study)["steps"] if r["count"]]
            mean_trial = sum(r["seconds"] for r in ran) / max(sum(r["count"] for r in ran), 1)
            spent += in_flight * mean_trial
        if spent >= compute:
            return "budget"
    return None


def run(
    study: optuna.Study,
    ctx: TrialContext,
    target: int,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial | None], None] = lambda s, t: None,
    compute: float | None = None,
    shared: bool = False,
) -> str:
    """Run trials until the study holds `target` trained keep sets, or has spent `compute`
    seconds of search (a trial under way finishes); returns why it stopped (`stop_reason`).

    `target` (`--trials N`) is counted in the shared storage, so a resumed run or a second
    process on the same storage stops at the same total. Optuna runs heartbeats during each
    trial and fails stale trials (left RUNNING by a crash) before the next one; the storage's
    retry callback re-queues their keep sets once (a trial of this process failed so while it
    was paused - a sleeping laptop - counts as one failure, not a crash). `shared`: processes
    started together train this study's keep sets (`bench truth --workers`), so the trials they
    are running count towards the target too, and none starts a trial only to find every keep
    set taken."""
    objective = make_objective(ctx, target)
    streaks = Streaks()
    while True:
        running = (
            len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) if shared else 0
        )
        if reason := stop_reason(study, ctx.space, target, running, compute):
            return reason
        finished: list[optuna.trial.FrozenTrial] = []
        asked: list[int] = []
        try:
            study.optimize(
                lambda trial, ids=asked: ids.append(trial._trial_id) or objective(trial),
                n_trials=1,
                catch=(Exception,),
                callbacks=[lambda _, trial, done=finished: done.append(trial)],
            )
        except Exception:
            # the objective's errors are caught (a FAIL trial): this one came from telling a
            # trial that another process had failed as stale meanwhile (Optuna cannot tell a
            # finished trial); its keep set was re-queued, so this counts as a failure only
            failed = study._storage.get_trial(asked[-1]) if asked else None
            if failed is None or failed.state != TrialState.FAIL:
                raise
            finished.append(failed)
        last = finished[-1] if finished else None
        on_trial(study, last)
        if last is not None and (stalled := streaks.update(last)):
            return stalled
