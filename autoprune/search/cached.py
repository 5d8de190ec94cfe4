"""Results a study computes once and keeps (in its user attrs, or `screen.json` beside it), so
a resumed run, a second process or a report reuses them: the full model's reference and its
test metrics, the latency profile, importance priors, the zero-shot screen, and test metrics of
keep sets asked for after the search.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import safetensors.torch
from torch import nn

from autoprune.export import atomic_write_bytes, atomic_write_text
from autoprune.importance import scores
from autoprune.objective import (
    TrialContext,
    fit_latency_profile,
    free_memory,
    realign,
    relative,
    run_trial,
    test_metrics,
)
from autoprune.record import TrialRecord
from autoprune.screen import (
    PROGRESS_EVERY,
    SCREEN_WINDOWS,
    ScreenTooDear,
    applications,
    candidate_pool,
    screen,
)
from autoprune.search.prepared import Prepared
from autoprune.study import (
    FRONT_TEST_ATTR,
    MODEL_KEYS,
    PRIORS_ATTR,
    PROFILE_ATTR,
    REFERENCE_ATTR,
    RESUME_KEYS,
    front_of,
    keep_key,
    spending,
    study_dir,
)

REALIGNED_FULL = ".full-realigned.safetensors"  # hidden: a study's intermediate, removed once used


def ensure_reference(
    prep: Prepared, log: Callable[[str], None] = print, keep_model: bool = True
) -> dict:
    """Latency profile and the full model, zero-shot and re-aligned, on the validation split,
    computed once per study. Their test metrics wait for the end (`reference_test`): nothing
    only the final report needs runs before the first trial. With `keep_model`, the re-aligned
    full model waits for them, and for the held-out datasets', in the study folder
    (REALIGNED_FULL, `realigned_full`), so it is not re-aligned again."""
    study, ctx = prep.study, prep.ctx
    attrs = study.user_attrs
    if PROFILE_ATTR in attrs:
        ctx.profile = attrs[PROFILE_ATTR]
        if ctx.profile["device"] != str(ctx.device):
            log(
                f"note: latency_ms follows the profile measured on {ctx.profile['device']} when "
                f"this study was created, not {ctx.device}"
            )
    else:
        log("measuring the latency profile ...")
        with spending(study, "latency profile"):
            ctx.profile = fit_latency_profile(ctx)
        # processes sharing a storage may start together: the first profile stored is the one
        # every trial of the study predicts latency from
        ctx.profile = study.user_attrs.get(PROFILE_ATTR) or ctx.profile
        study.set_user_attr(PROFILE_ATTR, ctx.profile)
        if ctx.profile["r2"] < 0.9:
            log(
                f"warning: the latency profile fits poorly (R² {ctx.profile['r2']:.2f}); is the "
                "machine busy? latency_ms of this study will be noisy"
            )
    if REFERENCE_ATTR in attrs:
        return know_full(ctx, attrs[REFERENCE_ATTR])
    everything = tuple(range(ctx.adapter.num_layers))
    with spending(study, "full model (val)"):
        log("evaluating the full model zero-shot ...")
        model, zero_shot = run_trial(ctx, everything, realign_model=False)
        del model
        log(f"re-aligning the full model ({ctx.space.realign.steps} steps, as every trial) ...")
        model, realigned = run_trial(ctx, everything)
        if keep_model:
            save_weights(model, study_dir(prep.name) / REALIGNED_FULL)
        del model
        free_memory()
    if ctx.more:  # the zero-shot model's ratios are to the re-aligned one, known only now
        ctx.full["val"] = realigned["datasets"]
        zero_shot |= relative(ctx, zero_shot["datasets"], "val")
    reference = study.user_attrs.get(REFERENCE_ATTR) or {
        "zero_shot": zero_shot,
        "realigned": realigned,
    }
    study.set_user_attr(REFERENCE_ATTR, reference)
    return know_full(ctx, reference)


def know_full(ctx: TrialContext, reference: dict) -> dict:
    """Tell a multi-dataset context the re-aligned full model's per-dataset metrics (what every
    trial's ratios are to); returns `reference`."""
    if ctx.more:
        realigned = reference["realigned"]
        ctx.full["val"] = realigned["datasets"]
        if "test" in realigned:
            ctx.full["test"] = realigned["test"]["datasets"]
    return reference


def reference_test(prep: Prepared, log: Callable[[str], None] = print) -> dict:
    """The full model's test metrics, zero-shot and re-aligned (`realigned_full`), computed
    once, when the search is over."""
    study, ctx = prep.study, prep.ctx
    reference = dict(study.user_attrs[REFERENCE_ATTR])
    # re-aligned first: with several datasets the zero-shot model's ratios are to its metrics
    for kind in ("realigned", "zero_shot"):
        if "test" in reference[kind]:
            continue
        log(f"evaluating the full model ({kind.replace('_', '-')}) on the test split ...")
        with spending(study, "full model (test)"):
            if kind == "realigned":
                model = realigned_full(prep, log, "for its test metrics")
            else:
                model = ctx.adapter.prune(tuple(range(ctx.adapter.num_layers))).to(ctx.device)
            reference[kind] = {**reference[kind], "test": test_metrics(ctx, model)}
            del model
            free_memory()
        study.set_user_attr(REFERENCE_ATTR, reference)
        know_full(ctx, reference)
    return reference


def realigned_full(prep: Prepared, log: Callable[[str], None], why: str) -> nn.Module:
    """The full model re-aligned on the study's data, on the study's device: the one
    `ensure_reference` kept (REALIGNED_FULL), or re-aligned again with the same budget and seed
    (the same model) when it is not there."""
    ctx = prep.ctx
    model = ctx.adapter.prune(tuple(range(ctx.adapter.num_layers))).to(ctx.device)
    if not restored(model, study_dir(prep.name) / REALIGNED_FULL):
        log(f"re-training the full model {why} ...")
        realign(ctx, model)
    return model


def drop_realigned_full(prep: Prepared) -> None:
    """Remove the kept re-aligned full model: the end of a run that may have needed it (its
    test metrics, the held-out datasets')."""
    (study_dir(prep.name) / REALIGNED_FULL).unlink(missing_ok=True)


def save_weights(model: nn.Module, path: Path) -> None:
    """`model`'s weights as safetensors at `path`, written whole or not at all; tensors the
    model shares are stored under each of their names (copies), as `restored` reads them."""
    state = {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}
    atomic_write_bytes(path, safetensors.torch.save(state))


def restored(model: nn.Module, path: Path) -> bool:
    """Load `model`'s weights from the safetensors file `path` if it is there and fits it
    exactly (same names and shapes); otherwise leave `model` untouched."""
    try:
        state = safetensors.torch.load_file(path, device=str(next(model.parameters()).device))
    except (OSError, safetensors.SafetensorError):
        return False  # not kept (another machine, an older study) or damaged: re-align
    own = model.state_dict()
    if state.keys() != own.keys() or any(state[k].shape != own[k].shape for k in own):
        return False
    model.load_state_dict(state)
    return True


def front_test(prep: Prepared, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Test metrics of every front keep set, stored in the study by keep set and computed once
    (`keep_test`): costly (`report.front_test_estimate`), so only on request. Never used to
    select: the rule reads validation metrics only."""
    trials, mask = front_of(prep.study)
    for trial in (t for t, on_front in zip(trials, mask, strict=True) if on_front):
        keep_test(prep, TrialRecord.of(trial).keep_set, f"trial {trial.number}", log)
    return prep.study.user_attrs.get(FRONT_TEST_ATTR, {})


def keep_test(
    prep: Prepared, keep: Sequence[int], what: str, log: Callable[[str], None] = print
) -> dict:
    """Test metrics of a trained keep set, from the study or computed once and stored: it is
    re-trained as its trial was (same seed and budget, so the same model), then forecast on
    every test window."""
    study, ctx = prep.study, prep.ctx
    stored = study.user_attrs.get(FRONT_TEST_ATTR, {})
    if keep_key(keep) in stored:
        return stored[keep_key(keep)]
    log(f"re-training keep set {list(keep)} ({what}) for its test metrics ...")
    with spending(study, "front test"):
        model = ctx.adapter.prune(keep).to(ctx.device)
        realign(ctx, model)
        test = test_metrics(ctx, model)
        del model
        free_memory()
    store_front_test(study, keep, test)
    return test


def store_front_test(study: optuna.Study, keep: Sequence[int], test: dict) -> None:
    """One keep set's test metrics, stored at once: an interrupted run keeps what it computed."""
    stored = dict(study.user_attrs.get(FRONT_TEST_ATTR, {}))
    study.set_user_attr(FRONT_TEST_ATTR, {**stored, keep_key(keep): test})


def screen_table(
    prep: Prepared, log: Callable[[str], None] = print, allowed_s: float | None = None
) -> dict:
    """Zero-shot screen of the study's candidate pool and of the full model, computed once and
    cached in the study folder, so a resumed run or a second process reuses it. With
    `allowed_s`, a screen not cached yet stops with ScreenTooDear once its first keep sets
    project it past that many seconds (the seconds it ran are counted as the screen's)."""
    ctx = prep.ctx
    pool_sets = candidate_pool(ctx.space, prep.settings["seed"])
    everything = tuple(range(ctx.adapter.num_layers))
    cache = study_dir(prep.name) / "screen.json"
    key = {k: prep.settings[k] for k in (*RESUME_KEYS, *MODEL_KEYS) if k in prep.settings}
    key |= {"windows": SCREEN_WINDOWS}
    if (steps := ctx.adapter.screen_steps(ctx.setting.horizon)) < ctx.setting.horizon:
        key["steps"] = steps  # a screen cached before Chronos-Bolt's was one pass is redone
    try:
        cached = json.loads(cache.read_text()) if cache.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        cached = {}  # damaged (a copy cut short, a full disk): the cache is rebuilt
    if cached.get("key") == key:
        return {tuple(map(int, k.split())): v for k, v in cached["sets"].items()}
    if allowed_s is not None and allowed_s <= 0:
        raise ScreenTooDear(None, allowed_s)
    log(
        f"screening {len(pool_sets):,} keep sets and the full model zero-shot (once per study"
        + (f", on each of {len(ctx.datasets)} datasets" if ctx.more else "")
        + ") ..."
    )
    keep_sets = [*pool_sets, everything]
    over_budget = screen_budget(keep_sets, len(ctx.datasets), allowed_s)
    with spending(prep.study, "screen"):
        tables = [
            screen(
                ctx.adapter,
                ctx.adapter.model,
                series.eval_windows(
                    "val", ctx.setting.context_length, ctx.setting.horizon, SCREEN_WINDOWS
                ),
                ctx.setting.horizon,
                ctx.setting.patch_size,
                series.seasonality,
                keep_sets,
                on_progress=screen_progress(len(keep_sets), log, over_budget),
            )
            for series in ctx.datasets
        ]
    # several datasets: each keep set's screen is the aggregate of its ratios to the full model's
    table = (
        tables[0]
        if not ctx.more
        else {
            keep: {"mase": ctx.combine([t[keep]["mase"] / t[everything]["mase"] for t in tables])}
            for keep in tables[0]
        }
    )
    payload = {"key": key, "sets": {" ".join(map(str, k)): v for k, v in table.items()}}
    atomic_write_text(cache, json.dumps(payload))
    return table


def screen_budget(
    keep_sets: Sequence[tuple[int, ...]], datasets: int, allowed_s: float | None
) -> Callable[[int], None]:
    """A check for `screen`'s first progress report (after PROGRESS_EVERY keep sets): it
    projects the whole screen, on every dataset, from the layer applications done so far and
    raises ScreenTooDear past `allowed_s` (None: no limit), so at most that first stretch is
    spent on a screen that would not pay."""
    if allowed_s is None:
        return lambda done: None
    started = time.perf_counter()
    spent = applications(keep_sets).cumsum()
    checked = []

    def check(done: int) -> None:
        if checked:
            return
        checked.append(done)
        elapsed = time.perf_counter() - started
        projected = elapsed * datasets * spent[-1] / max(spent[done - 1], 1)
        if projected > allowed_s:
            raise ScreenTooDear(projected, allowed_s)

    return check


def screen_progress(
    total: int, log: Callable[[str], None], check: Callable[[int], None] = lambda done: None
) -> Callable[[int], None]:
    """`screen`'s progress hook: `check` first (`screen_budget`), then a line at every quarter
    of the keep sets (it reports every PROGRESS_EVERY), with the time taken and left, so a long
    screen does not look stuck."""
    started, quarter = time.perf_counter(), total / 4

    def on_progress(done: int) -> None:
        check(done)
        if done // quarter > (done - PROGRESS_EVERY) // quarter and done < total:
            elapsed = time.perf_counter() - started
            log(
                f"  screened {done:,} of {total:,} keep sets: {elapsed:.0f} s, about "
                f"{elapsed / done * (total - done):.0f} s left"
            )

    return on_progress


def priors(
    prep: Prepared, methods: Sequence[str], log: Callable[[str], None] = print
) -> dict[str, list[float]]:
    """Importance scores of the study's model, computed once and kept in the study: every method
    but `ablation` from one shared calibration pass over train windows."""
    stored = dict(prep.study.user_attrs.get(PRIORS_ATTR, {}))
    missing = [m for m in methods if m not in stored]
    if missing:
        ctx, setting = prep.ctx, prep.ctx.setting
        log(f"scoring layer importance ({', '.join(missing)}) ...")
        calibration = ctx.series.eval_windows(
            "train", setting.context_length, setting.horizon, SCREEN_WINDOWS
        )
        validation = ctx.series.eval_windows(
            "val", setting.context_length, setting.horizon, ctx.space.val_windows
        )
        with spending(prep.study, "importance"):
            computed = scores(
                missing,
                ctx.adapter,
                ctx.adapter.model,
                calibration,
                validation,
                setting.horizon,
                setting.patch_size,
            )
        stored |= {method: values.tolist() for method, values in computed.items()}
        prep.study.set_user_attr(PRIORS_ATTR, stored)
    return stored
