"""What happens in one trial: keep set -> prune -> re-align -> evaluate.

The full model is the reference and goes through the same steps (keep = every layer), once
zero-shot and once with every trial's re-alignment budget: fine-tuning helps it too, and
comparing re-aligned pruned models with a zero-shot full model would flatter pruning. Objectives
are validation metrics; a multi-fidelity trial may stop at a rung (`rung_steps`), and
`latency_ms` is a per-study profile's prediction (`fit_latency_profile`).
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from scipy.optimize import nnls
from torch import nn

from autoprune.data import Series, Windows
from autoprune.evaluate import Setting, evaluate
from autoprune.metrics import METRICS, accuracy_index
from autoprune.models import Adapter, KeepSet
from autoprune.multifidelity import (
    still_promising,
    stop_rung,
    stopped_before,
)
from autoprune.pareto import hv_reference
from autoprune.record import TrialRecord, mark, mark_sampled
from autoprune.screen import SCREEN_WINDOWS, screen
from autoprune.space import SearchSpace
from autoprune.study import REFERENCE_ATTR, is_trained
from autoprune.train import BatchFn, distill_loss, fit

LATENCY_BATCH = 32
LATENCY_WARMUP = 2
LATENCY_REPEATS = 7
# measured / predicted beyond this factor (either way) is flagged: both are medians of repeats,
# so ordinary timing noise stays well inside it, a change of the machine's load does not
LATENCY_TOLERANCE = 1.5
RUNG_FRACTIONS = (0.1, 1 / 3)  # of the re-alignment budget: 3 and 10 of 30 steps


def rung_steps(steps: int) -> tuple[int, ...]:
    """The steps at which a re-alignment of `steps` steps can record its rungs (`rung_fidelity`
    with the seconds spent training up to there and evaluating; which of them a trial records:
    `TrialContext.rungs`). A multi-fidelity study (`stop_early`) uses them to stop a keep set
    that can no longer reach the front; a rung is the prefix of the full re-alignment (same
    seed, same schedule), so a keep set that goes on ends exactly where a single-fidelity trial
    would."""
    return tuple(sorted({max(1, round(steps * f)) for f in RUNG_FRACTIONS} - {steps, 0}))


class StoppedAtRung(Exception):
    """A multi-fidelity trial that cannot reach the front any more; carries what it measured."""

    def __init__(self, steps: int, record: dict) -> None:
        super().__init__(f"stopped after {steps} re-alignment steps")
        self.steps, self.record = steps, record


AGGREGATES = ("geomean", "worst")


def geomean(values: Sequence[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


@dataclass
class TrialContext:
    """Everything a trial needs, built once per process and reused by every trial.

    A multi-dataset study has `more` datasets after the first (`series`): every re-alignment
    batch mixes all of them in equal shares, and each accuracy metric is aggregated over them as
    the ratio to the re-aligned full model's on that dataset (`aggregate`: geometric mean or the
    worst), so the re-aligned full model scores 1. `full` holds that model's per-dataset metrics
    by split, once known. The first dataset alone drives the latency batch and the priors."""

    adapter: Adapter
    series: Series
    setting: Setting
    space: SearchSpace
    device: torch.device
    seed: int
    profile: dict = field(default_factory=dict)
    stop_early: bool = False  # multi-fidelity: stop a keep set at a rung once it cannot win
    more: tuple[Series, ...] = ()
    aggregate: str = "geomean"
    full: dict[str, dict[str, dict]] = field(default_factory=dict)
    fused_adamw: bool = True  # False: AdamW's for-loop, as a table built before 2026-12-03 was
    all_rungs: bool = False  # record every rung, as a ground-truth table's trials do

    def __post_init__(self) -> None:
        self.adapter.model.to(self.device)
        setting = self.setting
        windows = self.series.eval_windows(
            "val", setting.context_length, setting.horizon, LATENCY_BATCH
        )
        self._latency_past = torch.as_tensor(windows.past, device=self.device)
        self._rung_windows = [
            series.eval_windows("val", setting.context_length, setting.horizon, SCREEN_WINDOWS)
            for series in self.datasets
        ]

    @property
    def rungs(self) -> tuple[int, ...]:
        """The steps at which a trial records its rung fidelity: in a multi-fidelity study the
        rung the stop rule reads (`stop_rung`), in a single-fidelity one none, for a
        ground-truth table every one (`all_rungs`). Each evaluation costs ~1.5% of a trial of
        the default study, so none is made that nothing reads."""
        steps = rung_steps(self.space.realign.steps)
        if self.all_rungs or not steps:
            return steps
        return (stop_rung(steps),) if self.stop_early else ()

    @property
    def datasets(self) -> tuple[Series, ...]:
        return (self.series, *self.more)

    def combine(self, ratios: Sequence[float]) -> float:
        """One number from per-dataset ratios (lower is better), by the study's aggregate."""
        return float(max(ratios)) if self.aggregate == "worst" else geomean(ratios)


def _forward_ms(ctx: TrialContext, model: nn.Module) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        ctx.adapter.forward(model, ctx._latency_past, ctx.setting.horizon, ctx.setting.patch_size)
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    return (time.perf_counter() - start) * 1000


def measure_latency(ctx: TrialContext, model: nn.Module) -> float:
    """Median wall time (ms) of one inference forward pass at a fixed batch and context."""
    for _ in range(LATENCY_WARMUP):
        _forward_ms(ctx, model)
    return float(np.median([_forward_ms(ctx, model) for _ in range(LATENCY_REPEATS)]))


def _profile_keep_sets(groups: tuple[range, ...]) -> list[tuple[int, ...]]:
    """The keep sets a latency profile times. One group: its first 1, L/4, L/2, 3L/4 and L
    layers. Several (an encoder and a decoder stack): each group's first 1, n/4, n/2, 3n/4 and n
    blocks with every other group whole, so each group's per-layer cost is measured on its own;
    a group of one block also without it, or its cost could not be told from the fixed cost."""
    keep_sets = []
    for group in groups:
        n = len(group)
        depths = {1, max(1, n // 4), max(1, n // 2), max(1, 3 * n // 4), n}
        for k in sorted(depths | ({0} if n == 1 and len(groups) > 1 else set())):
            keep = [i for other in groups if other is not group for i in other]
            keep_sets.append(tuple(sorted([*keep, *group[:k]])))
    return list(dict.fromkeys(keep_sets))


def _kept_per_group(groups: list[list[int]] | None, keep: Sequence[int]) -> list[int]:
    """How many layers `keep` keeps of each group ([start, stop) bounds); None: one group."""
    if not groups:  # one group: every profile measured before stop 62
        return [len(keep)]
    return [sum(start <= i < stop for i in keep) for start, stop in groups]


def fit_latency_profile(ctx: TrialContext, rounds: int = 15) -> dict:
    """Fixed + per-layer cost, least squares over a few keep sets, measured once per study:
    encoder time is close to linear in the number of kept layers, and wall-clock timings on
    shared machines are noisy, so the `latency_ms` objective is this profile's prediction,
    which is deterministic: the front does not move with machine noise. A model of several
    layer groups (Chronos-Bolt's encoder and decoder blocks, where an encoder block reads every
    context patch and a decoder block one token) gets a per-layer cost for each group. Keep
    sets are measured in interleaved rounds, so drift in machine load spreads over all of them
    instead of biasing one, and each one's median over the rounds is kept."""
    groups = ctx.adapter.groups
    keep_sets = _profile_keep_sets(groups)
    models = {keep: ctx.adapter.prune(keep).to(ctx.device) for keep in keep_sets}
    for model in models.values():
        for _ in range(LATENCY_WARMUP):
            _forward_ms(ctx, model)
    samples: dict[tuple[int, ...], list[float]] = {keep: [] for keep in keep_sets}
    for _ in range(rounds):
        for keep, model in models.items():
            samples[keep].append(_forward_ms(ctx, model))
    del models
    bounds = [[g.start, g.stop] for g in groups]
    kept = np.array([_kept_per_group(bounds, keep) for keep in keep_sets], dtype=float)
    ms = np.array([np.median(samples[keep]) for keep in keep_sets])
    design = np.column_stack([np.ones(len(kept)), kept])
    # non-negative least squares: a busy machine can tilt an ordinary fit into a negative fixed
    # cost, which would predict impossible latencies for small keep sets
    (fixed, *per_layer), _ = nnls(design, ms)
    residual = float(np.sum((ms - design @ np.array([fixed, *per_layer])) ** 2))
    total = float(np.sum((ms - ms.mean()) ** 2)) or 1.0
    several = len(groups) > 1
    return {
        "fixed_ms": float(fixed),
        "per_layer_ms": [float(c) for c in per_layer] if several else float(per_layer[0]),
        **({"groups": bounds} if several else {}),
        "r2": 1 - residual / total,
        "points": [
            [*(int(k) for k in counts), round(float(m), 3)]
            for counts, m in zip(kept, ms, strict=True)
        ],
        "device": str(ctx.device),
        "batch": LATENCY_BATCH,
        "rounds": rounds,
        "context_length": ctx.setting.context_length,
    }


def predict_latency(profile: dict, keep: Sequence[int]) -> float:
    """The profile's latency of a keep set (ms): its fixed cost plus each group's per-layer cost
    times the layers the keep set keeps of that group."""
    per_layer = profile["per_layer_ms"]
    costs = per_layer if isinstance(per_layer, list) else [per_layer]
    counts = _kept_per_group(profile.get("groups"), keep)
    return profile["fixed_ms"] + sum(c * k for c, k in zip(costs, counts, strict=True))


def latency_off_profile(predicted: float | None, measured: float | None) -> bool | None:
    """Whether a measured latency is too far from the profile's prediction to be taken as the
    model's (the machine's load changed); the report flags it instead of printing it as normal.
    The front's keep sets and the selection are measured at the end of a search
    (`latency_measured_ms`), so the report can show prediction against measurement; beyond
    LATENCY_TOLERANCE times off (either way), the measurement says more about the load than
    about the model. None when either is unknown (a trial of a search is not timed)."""
    if predicted is None or measured is None:
        return None
    ratio = measured / predicted if predicted > 0 else math.inf
    return not 1 / LATENCY_TOLERANCE <= ratio <= LATENCY_TOLERANCE


def rung_fidelity(
    ctx: TrialContext, model: nn.Module, windows: Sequence[Windows] | None = None
) -> float:
    """The screen's measure of a (partly re-aligned) model: MASE of its mean forecast (no
    sampling) on the screen's SCREEN_WINDOWS validation windows. At rung 0 it is exactly the
    keep set's zero-shot screen. `windows` (one set per dataset) measures it elsewhere, for
    studies of the fidelity itself; the stop rule always reads the default."""
    training = model.training
    model.eval()
    values = []
    try:
        everything = tuple(range(len(ctx.adapter.layers(model))))
        setting = ctx.setting
        chosen = ctx._rung_windows if windows is None else windows
        for series, series_windows in zip(ctx.datasets, chosen, strict=True):
            result = screen(
                ctx.adapter,
                model,
                series_windows,
                setting.horizon,
                setting.patch_size,
                series.seasonality,
                [everything],
            )
            values.append(result[everything]["mase"])
    finally:
        model.train(training)
    # several datasets: the geometric mean, a fidelity calibrated against full-budget results
    return values[0] if len(values) == 1 else geomean(values)


def realign_batches(ctx: TrialContext) -> BatchFn:
    """The re-alignment's training batches: `batch_size` windows drawn from the train split,
    every dataset of the study in an equal share."""
    setting = ctx.setting
    shares = np.array_split(np.arange(ctx.space.realign.batch_size), len(ctx.datasets))

    def batches(rng: np.random.Generator):
        parts = [
            series.train_batch(rng, len(share), setting.context_length, setting.horizon)
            for series, share in zip(ctx.datasets, shares, strict=True)
        ]
        past = np.concatenate([w.past for w in parts])
        return past, np.concatenate([w.future for w in parts]), setting.patch_size

    return batches


def realign(
    ctx: TrialContext,
    model: nn.Module,
    rungs: dict | None = None,
    go_on: Callable[[int, float], bool] | None = None,
) -> list[float]:
    """The re-alignment fine-tune: same budget, same batches (same seed) for every keep set.
    With `mode = "distill"` the targets are (partly) the full model's sampled forecasts.

    With `rungs` (a dict to fill), the rung fidelity is recorded at each rung step with the
    seconds spent training so far and evaluating it; `go_on(steps, value)` returning False
    stops the re-alignment there (StoppedAtRung)."""
    budget = ctx.space.realign
    marks = ctx.rungs if rungs is not None else ()
    start = time.perf_counter()
    evaluating = 0.0

    def on_step(step: int, loss: float) -> None:
        nonlocal evaluating
        done = step + 1
        if done not in marks:
            return
        before = time.perf_counter()
        value = rung_fidelity(ctx, model)
        spent = time.perf_counter() - before
        rungs[str(done)] = {
            "mase": value,
            "train_s": round(before - start - evaluating, 4),
            "eval_s": round(spent, 4),
        }
        evaluating += spent
        if go_on is not None and not go_on(done, value):
            raise StoppedAtRung(done, {})

    # distillation: the full model (never modified) forecasts each batch's past; its forward
    # passes run inside the loop, so they count in the re-alignment's seconds
    loss_fn = (
        distill_loss(ctx.adapter, ctx.adapter.model, budget.distill_weight, ctx.seed)
        if budget.mode == "distill"
        else None
    )
    return fit(
        ctx.adapter,
        model,
        realign_batches(ctx),
        steps=budget.steps,
        lr=budget.lr,
        seed=ctx.seed,
        on_step=on_step if marks else None,
        loss_fn=loss_fn,
        fused=ctx.fused_adamw,
    )


def run_trial(
    ctx: TrialContext,
    keep: KeepSet,
    realign_model: bool = True,
    test: bool = False,
    go_on: Callable[[int, float], bool] | None = None,
    measure: bool | None = None,
) -> tuple[nn.Module, dict]:
    """One keep set through the whole pipeline; returns the re-aligned model and its record.

    Validation metrics are the objectives; `test=True` adds the test split (used only for the
    reference and the selected configuration, never to steer the search). `go_on` may stop the
    re-alignment at a rung: StoppedAtRung then carries the record so far (keep, rungs, timing).
    `measure`: time the pruned model's forward pass (`latency_measured_ms`); by default only
    where no latency profile predicts it (`latency_ms`). A search's trials skip it: the
    objective is the profile's prediction, and measuring cost 7% of a trial on the default study
    (its front is measured once at the end, `measure_front`).
    """
    timing = {}
    start = time.perf_counter()
    model = ctx.adapter.prune(keep).to(ctx.device)
    timing["prune_s"] = time.perf_counter() - start

    rungs: dict = {}
    start = time.perf_counter()
    try:
        losses = realign(ctx, model, rungs, go_on) if realign_model else []
    except StoppedAtRung as stop:
        timing["rungs_s"] = sum(r["eval_s"] for r in rungs.values())
        timing["realign_s"] = time.perf_counter() - start - timing["rungs_s"]
        stop.record = {
            "keep": list(keep),
            "rungs": rungs,
            "timing": {k: round(v, 4) for k, v in timing.items()},
        }
        raise
    timing["rungs_s"] = sum(r["eval_s"] for r in rungs.values())
    timing["realign_s"] = time.perf_counter() - start - timing["rungs_s"]

    start = time.perf_counter()
    metrics = val_metrics(ctx, model)
    timing["evaluate_s"] = time.perf_counter() - start

    measured = None
    if not ctx.profile if measure is None else measure:
        start = time.perf_counter()
        measured = measure_latency(ctx, model)
        timing["latency_s"] = time.perf_counter() - start

    predicted = predict_latency(ctx.profile, keep) if ctx.profile else measured
    record = {
        "keep": list(keep),
        **{m: metrics[m] for m in METRICS},
        "params": ctx.adapter.params(keep),
        "latency_ms": predicted,
        "latency_measured_ms": measured,
        "latency_off_profile": latency_off_profile(predicted, measured),
        "windows": metrics["windows"],
        **({"datasets": metrics["datasets"]} if ctx.more else {}),
        "realign_steps": len(losses),
        "realign_loss_first": losses[0] if losses else None,
        "realign_loss_last": losses[-1] if losses else None,
        "rungs": rungs,
        "timing": {k: round(v, 4) for k, v in timing.items()},
    }
    if test:
        record["test"] = test_metrics(ctx, model)
    return model, record


def val_metrics(ctx: TrialContext, model: nn.Module) -> dict:
    """The objectives' metrics: the study's `val_windows` windows of the validation split."""
    return _evaluate(ctx, model, "val", ctx.space.val_windows)


def test_metrics(ctx: TrialContext, model: nn.Module) -> dict:
    """Metrics on every window of the test split (only for the reference and the selection,
    never to steer the search)."""
    return _evaluate(ctx, model, "test", None)


def _evaluate(ctx: TrialContext, model: nn.Module, split: str, max_windows: int | None) -> dict:
    """Metrics on `split`; with several datasets, each dataset's under `datasets` and the
    aggregate of their ratios to the re-aligned full model's (`relative`) at the top."""
    per_dataset = {}
    for series in ctx.datasets:
        metrics = evaluate(
            ctx.adapter,
            model,
            series,
            split,
            ctx.setting,
            max_windows=max_windows,
            num_samples=ctx.space.num_samples,
        )
        bad = [m for m in METRICS if not math.isfinite(metrics[m])]
        if bad:
            raise FloatingPointError(f"{split} {', '.join(bad)} on {series.name} is not finite")
        per_dataset[series.name] = metrics
    if not ctx.more:
        return metrics
    return relative(ctx, per_dataset, split)


def relative(ctx: TrialContext, per_dataset: dict[str, dict], split: str) -> dict:
    """A multi-dataset record: each metric aggregated over datasets as the ratio to the
    re-aligned full model's on that dataset and split (the reference itself, before that is
    known, scores exactly 1), with the per-dataset metrics kept under `datasets`."""
    full = ctx.full.get(split) or per_dataset
    aggregated = {
        m: ctx.combine([per_dataset[name][m] / full[name][m] for name in per_dataset])
        for m in METRICS
    }
    windows = sum(m["windows"] for m in per_dataset.values())
    seconds = round(sum(m["seconds"] for m in per_dataset.values()), 3)
    return {**aggregated, "windows": windows, "seconds": seconds, "datasets": per_dataset}


def free_memory() -> None:
    """Hand a finished trial's CUDA blocks back. (No gc.collect(): a full collection costs
    ~0.3 s per trial here, and reference counting already frees a trial's model; the overhead
    benchmark checks that memory stays flat.)"""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def suggest_keep(trial: optuna.Trial, space: SearchSpace) -> KeepSet:
    """One boolean per droppable layer, repaired into [min_kept, max_kept] in layer order."""
    flags = {
        i: trial.suggest_categorical(space.param_name(i), (True, False)) for i in space.droppable
    }
    keep = space.keep_from_flags(flags)
    sampled = tuple(sorted(set(space.always_keep) | {i for i, kept in flags.items() if kept}))
    if sampled != keep:
        mark(trial, sampled_keep=list(sampled))
    return keep


def same_keep(study: optuna.Study, keep: KeepSet, number: int, claimed: bool) -> FrozenTrial | None:
    """Another trial of the same keep set that makes training it here redundant: one that
    completed, or one still running that trains it or may.

    Processes sharing a storage can pick a keep set at the same moment, and a trial writes its
    keep set only after sampling, so one check is not enough (a trial with a higher number may
    have checked before this one wrote its keep set, and be training it already). A trial checks
    twice: before it claims its keep set it yields to any running trial that has claimed it;
    after claiming, to any running trial of the keep set with a lower number. Two trials of one
    keep set can then never both train it; at worst both yield and it is proposed again."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        record = TrialRecord.of(other)
        if other.number == number or record.keep_set != keep:
            continue
        if other.state == TrialState.COMPLETE:
            return other
        if other.number < number if claimed else record.claimed:
            return other
    return None


TOTAL_POLL_S = 1.0


class FailedElsewhere(RuntimeError):
    """This process's trial was failed by another process sharing the study: its heartbeat was
    stale (this process was paused past the grace period: a suspended job, a sleeping laptop),
    and the storage's retry callback re-queued its keep set for a new trial."""


def within_total(study: optuna.Study, number: int, target: int) -> bool:
    """Whether trial `number`, which has claimed its keep set, may train it without taking the
    study past `target` trained keep sets; False once the study holds them.

    Processes sharing a study each check the total before they start a trial, but two can pass
    a plain check together on the last keep set (`--trials 8` trained 9; two processes trained
    11 of 10, one proposed more slowly claiming after a later one had passed). So a trial
    passes in two steps. While the trained keep sets and the running trials ahead of it (those
    that passed or are passing: `counted`; and those that claimed theirs before it) could make
    the total, it waits (one that fails or stops at a rung leaves room; a killed process's trial
    is failed once its heartbeat is stale). When there is room it marks itself `counted`, then
    reads the study again: it passes if the trained and the other `counted` trials still leave
    room. Of two that marked themselves together, at least one sees the other's mark (each
    wrote before it read again), so both never pass on one keep set's room. A marked trial that
    does not fit unmarks itself and waits if the earlier-numbered marked ones fill the room;
    else it keeps its mark and waits for the later ones to yield. A trial that passes stays
    `counted`. One that another process failed as stale meanwhile raises FailedElsewhere."""
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # what study.optimize does before a trial
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        trained = sum(map(is_trained, trials))
        running = {t.number: t for t in trials if t.state == TrialState.RUNNING}
        if number not in running:
            raise FailedElsewhere(
                f"trial {number} was failed as stale by another process while it waited for the "
                "study's total; its keep set was re-queued"
            )
        records = {n: TrialRecord.of(t) for n, t in running.items()}
        me = records[number]
        passing = [n for n, r in records.items() if n != number and r.counted]
        if trained >= target:
            if me.counted:
                mark_sampled(study, running[number], counted=False)
            return False
        if me.counted:  # marked: the second step
            if trained + len(passing) < target:
                return True
            if trained + sum(n < number for n in passing) >= target:  # the earlier ones fill it
                mark_sampled(study, running[number], counted=False)
        else:
            claimed = [n for n, r in records.items() if n < number and r.claimed and not r.counted]
            if trained + len(passing) + len(claimed) < target:
                mark_sampled(study, running[number], counted=True)
                continue  # read again at once
        time.sleep(TOTAL_POLL_S)


def failure_reason(exc: BaseException) -> str:
    """How a failed trial's `fail_reason` attr says what went wrong."""
    return f"{type(exc).__name__}: {exc}"[:500]


def stop_rule(ctx: TrialContext, trial: optuna.Trial, keep: KeepSet):
    """The multi-fidelity `go_on` of one trial, or None when it must reach the full budget:
    a single-fidelity study, an enqueued full-budget trial, a one-shot baseline (its numbers
    are what the user asked for), a keep set stopped before, no full-model reference yet, or a
    latency objective without a profile (its cost would not be known before training). Each
    keep set is stopped at most once, so a study whose remaining keep sets are all hopeless
    still reaches its target."""
    reference = trial.study.user_attrs.get(REFERENCE_ATTR)
    objectives = ctx.space.objectives
    record = TrialRecord.of(trial)
    if not ctx.stop_early or record.full_budget or record.baseline or not reference:
        return None
    if stopped_before(trial.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)), keep):
        return None
    if "latency_ms" in objectives and not ctx.profile:
        return None
    full = np.array([reference["realigned"][o] for o in objectives])
    accuracy = accuracy_index(objectives)
    known = {"params": ctx.adapter.params(keep)}
    if ctx.profile:
        known["latency_ms"] = predict_latency(ctx.profile, keep)
    point = np.array([known.get(o, np.nan) for o in objectives]) / full
    reference_point = hv_reference(objectives)
    decisive = stop_rung(rung_steps(ctx.space.realign.steps))

    def go_on(steps: int, value: float) -> bool:
        if steps != decisive:
            return True
        trials = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return still_promising(trials, steps, value, point, full, accuracy, reference_point)

    return go_on


def make_objective(ctx: TrialContext, target: int | None = None) -> Callable[[optuna.Trial], tuple]:
    """The Optuna objective: keep sets already evaluated are looked up, never trained again.
    With `target`, a trial trains only while the study holds fewer trained keep sets (counting
    those other processes are training), so a shared study stops at its total.
    In a multi-fidelity study a keep set that cannot reach the front is stopped at a rung and
    stored as PRUNED with what it measured (`stopped_at`, `rungs`): never on the front, and
    trained to the full budget if it is proposed or enqueued again."""

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        keep = suggest_keep(trial, ctx.space)
        mark(trial, keep=list(keep))
        earlier = same_keep(trial.study, keep, trial.number, claimed=False)
        if earlier is None:
            mark(trial, claimed=True)
            earlier = same_keep(trial.study, keep, trial.number, claimed=True)
        if earlier is not None and earlier.state == TrialState.COMPLETE:
            lookup_of = TrialRecord.of(earlier).lookup_of
            mark(trial, lookup_of=earlier.number if lookup_of is None else lookup_of)
            return tuple(earlier.values)
        if earlier is not None:
            mark(trial, duplicate_of=earlier.number)
            raise optuna.TrialPruned(f"keep set is being trained by trial {earlier.number}")
        if target is not None and not within_total(trial.study, trial.number, target):
            mark(trial, over_total=target)
            raise optuna.TrialPruned(f"the study holds its {target} trained keep sets")
        start = time.perf_counter()
        try:
            _, record = run_trial(ctx, keep, go_on=stop_rule(ctx, trial, keep))
        except StoppedAtRung as stop:
            wall_s = round(time.perf_counter() - start, 3)
            mark(trial, **stop.record, stopped_at=stop.steps, wall_s=wall_s)
            raise optuna.TrialPruned(str(stop)) from None
        except Exception as exc:
            wall_s = round(time.perf_counter() - start, 3)
            mark(trial, fail_reason=failure_reason(exc), wall_s=wall_s)
            raise
        finally:
            free_memory()
        budget = ctx.space.realign
        record.update(
            device=str(ctx.device),
            seed=ctx.seed,
            realign_lr=budget.lr,
            realign_batch_size=budget.batch_size,
            realign_mode=budget.mode,
            wall_s=round(time.perf_counter() - start, 3),
            worker=f"{socket.gethostname()}:{os.getpid()}",  # which machine and process trained it
        )
        mark(trial, **record)
        return tuple(record[o] for o in ctx.space.objectives)

    return objective
