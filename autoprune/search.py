"""The search job: resolve options -> open or resume the study -> reference -> backend -> select.

Options left unset when resuming are taken from the study, so "resuming is running the same
command again" holds even when the first command relied on defaults. Settings that make trials
comparable (model, dataset, forecast setting, objectives, re-alignment budget, seed) cannot
change within a study; the sampler, backend, device and trial target can.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch

from autoprune import __version__
from autoprune.backends import local
from autoprune.data import Series, load_series
from autoprune.errors import AutoPruneError, StudyError
from autoprune.evaluate import Setting, evaluate, resolve_device
from autoprune.export import atomic_write_text, read_metadata, remove_leftovers, write_checkpoint
from autoprune.importance import METHODS, scores
from autoprune.metrics import METRICS, accuracy_index
from autoprune.models import MODELS, load_adapter
from autoprune.multifidelity import FULL_BUDGET_ATTR, STOPPED_ATTR, Pool, ScreenedSampler
from autoprune.objective import (
    AGGREGATES,
    TrialContext,
    fit_latency_profile,
    free_memory,
    predict_latency,
    realign,
    relative,
    run_trial,
    test_metrics,
)
from autoprune.pareto import (
    Rule,
    default_rule,
    hv_reference,
    parse_rule,
    rule_met,
    select,
)
from autoprune.samplers import DEFAULT_SAMPLER, check_sampler, make_sampler
from autoprune.screen import SCREEN_WINDOWS, candidate_pool, screen
from autoprune.space import objective_value, space_for_model
from autoprune.study import (
    FRONT_TEST_ATTR,
    HOLDOUT_ATTR,
    PRIORS_ATTR,
    PROFILE_ATTR,
    REFERENCE_ATTR,
    RESUME_KEYS,
    SELECTION_ATTR,
    create_or_resume,
    front_of,
    full_values,
    keep_key,
    load_study,
    selected_checkpoint,
    settings_of,
    storage_url,
    stored_study,
    study_dir,
    trained_trials,
    validate_name,
)

DEFAULT_MODEL = "moirai-tiny"
DEFAULT_DATASET = "etth1"
# the default study's front reached 99% of its 40-trial hypervolume by trial 27, and the study
# takes ~6 minutes on 2 cores (README)
DEFAULT_TRIALS = 30
DEFAULT_SEED = 0
BACKENDS = ("local", "ray")
# multi: a keep set gets a short re-alignment first and goes on to the full budget only while it
# can still reach the front (objective.stop_rule); single: every keep set gets the full budget.
# multi is the default: designed on the ETTh1 table, it needed less compute than single to 95%
# of the true hypervolume on the ETTh2 and exchange-rate tables too (README, Search efficiency)
FIDELITIES = ("multi", "single")
DEFAULT_FIDELITY = "multi"


@dataclass
class SearchOptions:
    study: str | None = None
    model: str | None = None
    dataset: str | None = None
    target: str | None = None
    freq: str | None = None
    split: str | None = None
    trials: int | None = None
    storage: str | None = None
    sampler: str | None = None
    seed: int | None = None
    device: str = "auto"
    space: str | None = None
    objective: str | None = None
    rule: str | None = None  # default: pareto.default_rule of the study's objectives
    context_length: int | None = None
    horizon: int | None = None
    patch_size: int | None = None
    threads: int | None = None
    enqueue: str | None = None
    backend: str = "local"
    workers: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    address: str | None = None
    fidelity: str | None = None
    warm_start: str | None = None
    continue_stopped: bool = False
    holdout_dataset: str | None = None
    aggregate: str | None = None  # several datasets: geomean (default) or worst


@dataclass
class Prepared:
    """A study opened for work, with everything its trials need."""

    name: str
    study: optuna.Study
    ctx: TrialContext
    settings: dict
    sampler: str
    rule: str
    warm: dict[tuple[int, ...], float] = dataclasses.field(default_factory=dict)
    holdout: dict[str, Series] = dataclasses.field(default_factory=dict)


def default_study_name(model: str, dataset: str) -> str:
    stem = Path(model).name if Path(model).exists() else model
    data = Path(dataset).stem if dataset.lower().endswith(".csv") else dataset
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{data}").strip("-.")[:100]


def _stored(name: str, storage: str | None) -> tuple[dict, int]:
    """The settings a study was created with and how many trials it holds ({} and 0 if new)."""
    study = stored_study(name, storage, read_only=False)
    return (settings_of(study), len(study.get_trials(deepcopy=False))) if study else ({}, 0)


def _space_name(model: str) -> str:
    return Path(model).name if Path(model).exists() else model


def check_backend(opts: SearchOptions) -> None:
    """Backend options are checked before anything is loaded; the Ray ones need --backend ray."""
    if opts.backend not in BACKENDS:
        raise AutoPruneError(f"--backend {opts.backend!r} is unknown; use {' or '.join(BACKENDS)}")
    ray_only = {
        "--workers": opts.workers,
        "--cpus-per-trial": opts.cpus_per_trial,
        "--gpus-per-trial": opts.gpus_per_trial,
        "--address": opts.address,
    }
    given = [flag for flag, value in ray_only.items() if value is not None]
    if opts.backend == "local" and given:
        raise AutoPruneError(
            f"{', '.join(given)} only apply to --backend ray; add --backend ray or leave them out"
        )
    if opts.workers is not None and opts.workers < 1:
        raise AutoPruneError(f"--workers {opts.workers} must be at least 1")
    if opts.cpus_per_trial is not None and not opts.cpus_per_trial > 0:
        raise AutoPruneError(f"--cpus-per-trial {opts.cpus_per_trial:g} must be more than 0")
    if opts.gpus_per_trial is not None and not opts.gpus_per_trial >= 0:
        raise AutoPruneError(f"--gpus-per-trial {opts.gpus_per_trial:g} must be 0 or more")
    if opts.backend == "ray":
        from autoprune.backends import ray as ray_backend

        ray_backend.preflight(ray_options(opts))


def ray_options(opts: SearchOptions):
    """The Ray backend's options; imports Ray, so only called when --backend ray was asked for."""
    from autoprune.backends import ray as ray_backend

    return ray_backend.RayOptions(
        workers=opts.workers or 1,
        cpus_per_trial=opts.cpus_per_trial,
        gpus_per_trial=opts.gpus_per_trial or 0.0,
        address=opts.address,
        device=opts.device,
    )


def prepare(opts: SearchOptions) -> Prepared:
    """Resolve options against the stored study (if any) and open it."""
    if opts.trials is not None and opts.trials < 1:
        raise AutoPruneError(f"--trials {opts.trials} must be at least 1")
    if opts.threads is not None and opts.threads < 1:
        raise AutoPruneError(f"--threads {opts.threads} must be at least 1")
    check_backend(opts)
    name = validate_name(
        opts.study
        or default_study_name(opts.model or DEFAULT_MODEL, opts.dataset or DEFAULT_DATASET)
    )
    stored, trials_so_far = _stored(name, opts.storage)
    objective = opts.objective or (stored.get("objectives") or [None])[0]
    if objective and objective not in METRICS:
        raise AutoPruneError(
            f"--objective {objective!r} is not an accuracy metric; use one of {', '.join(METRICS)}"
        )
    stored_options = stored.get("dataset_options", {})
    model = opts.model or stored.get("model") or DEFAULT_MODEL
    dataset = opts.dataset or stored.get("dataset") or DEFAULT_DATASET
    dataset_options = {
        "target": opts.target or stored_options.get("target"),
        "freq": opts.freq or stored_options.get("freq"),
        "split": opts.split or stored_options.get("split"),
    }
    seed = opts.seed if opts.seed is not None else stored.get("seed", DEFAULT_SEED)
    sampler = check_sampler(opts.sampler or stored.get("sampler") or DEFAULT_SAMPLER)
    fidelity = opts.fidelity or stored.get("fidelity") or DEFAULT_FIDELITY
    if fidelity not in FIDELITIES:
        raise AutoPruneError(f"--fidelity {fidelity!r} is unknown; use {' or '.join(FIDELITIES)}")
    warm_start = opts.warm_start or stored.get("warm_start")
    warm_names = [validate_name(n.strip()) for n in (warm_start or "").split(",") if n.strip()]
    if name in warm_names:
        raise AutoPruneError(f"--warm-start {name!r} is this study; name other, finished studies")
    torch.set_num_threads(opts.threads or os.cpu_count() or 1)
    device = resolve_device(opts.device)

    names = dataset_names(dataset)
    aggregate = opts.aggregate or stored.get("aggregate") or AGGREGATES[0]
    if aggregate not in AGGREGATES:
        raise AutoPruneError(f"--aggregate {aggregate!r} is unknown; use {' or '.join(AGGREGATES)}")
    if opts.aggregate and len(names) == 1:
        raise AutoPruneError(
            "--aggregate only applies to a study of several datasets (--dataset a,b,...)"
        )
    series, *more = [
        load_series(name, **options)
        for name, options in zip(names, per_dataset_options(dataset_options, names), strict=True)
    ]
    adapter = load_adapter(model)
    space_file = opts.space or stored.get("space_file")
    space = space_for_model(_space_name(model), adapter.num_layers, space_file)
    if objective:
        space = space.with_objectives(
            [objective, *(o for o in space.objectives if o not in METRICS)]
        )
    rule = opts.rule or default_rule(space.objectives)
    parse_rule(rule, space.objectives)  # a bad rule fails now, not after the trials
    if opts.enqueue:
        from autoprune.baselines import check_kinds

        check_kinds(k.strip() for k in opts.enqueue.split(",") if k.strip())
    stored_setting = stored.get("setting", {})
    setting = Setting.for_series(
        series,
        adapter,
        opts.context_length or space.context_length or stored_setting.get("context_length"),
        opts.horizon or space.horizon or stored_setting.get("horizon"),
        opts.patch_size or space.patch_size or stored_setting.get("patch_size"),
    )
    for other in more:
        other.check_fits(setting.context_length, setting.horizon)
    settings = {
        "version": __version__,
        "model": model,
        "dataset": dataset,
        "dataset_options": dataset_options,
        "setting": dataclasses.asdict(setting),
        "objectives": list(space.objectives),
        "realign": space.realign.settings(),
        "evaluation": {"val_windows": space.val_windows, "num_samples": space.num_samples},
        "space": {
            "num_layers": space.num_layers,
            "always_keep": list(space.always_keep),
            "min_kept": space.min_kept,
            "max_kept": space.upper,
        },
        "space_file": space_file,
        "seed": seed,
        "sampler": sampler,
        "fidelity": fidelity,
        "warm_start": ",".join(warm_names) or None,
    }
    if more:
        settings["aggregate"] = aggregate
    warm = warm_knowledge(warm_names, opts.storage, model, space.num_layers)
    holdout = holdout_series(opts.holdout_dataset, names, [series, *more], setting)
    study = create_or_resume(
        name,
        opts.storage,
        settings,
        make_sampler(sampler, seed, trials_so_far),
    )
    ctx = TrialContext(
        adapter, series, setting, space, device, seed, more=tuple(more), aggregate=aggregate
    )
    ctx.stop_early = fidelity == "multi"
    return Prepared(name, study, ctx, settings, sampler, rule, warm, holdout)


def dataset_names(dataset: str) -> list[str]:
    """The datasets of `--dataset a,b,...` (registered names or CSV paths), each once."""
    names = [name.strip() for name in dataset.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise AutoPruneError(
            f"--dataset {dataset!r} must name one or more different datasets, e.g. etth1,etth2"
        )
    return names


def per_dataset_options(options: dict, names: Sequence[str]) -> list[dict]:
    """--target/--freq/--split of each dataset: one value for all, or one per dataset in
    order, separated by ';' (an empty one keeps that dataset's default): --target 'OT;price'."""
    per: list[dict] = [{} for _ in names]
    for key, value in options.items():
        parts = value.split(";") if value else [None]
        if len(parts) == 1:
            parts *= len(names)
        elif len(parts) != len(names):
            raise AutoPruneError(
                f"--{key} {value!r} has {len(parts)} values for {len(names)} datasets; give one "
                "for all, or one per dataset separated by ';'"
            )
        for options_of, part in zip(per, parts, strict=True):
            options_of[key] = part.strip() or None if part else None
    return per


def holdout_series(
    text: str | None, names: Sequence[str], used: Sequence[Series], setting: Setting
) -> dict[str, Series]:
    """The --holdout-dataset datasets (registered names or CSV paths), loaded and checked
    before anything is created: each must differ from the study's and fit its setting."""
    holdout = {}
    for name in (n.strip() for n in (text or "").split(",")):
        if not name:
            continue
        held_out = load_series(name)
        if name in names or held_out.name in {series.name for series in used}:
            raise AutoPruneError(
                f"--holdout-dataset {name!r} is the study's own dataset; a held-out dataset "
                "must be one the study never re-aligns or selects on"
            )
        held_out.check_fits(setting.context_length, setting.horizon)
        holdout[name] = held_out
    return holdout


def warm_knowledge(
    names: Sequence[str], storage: str | None, model: str, num_layers: int
) -> dict[tuple[int, ...], float]:
    """What finished studies of the same model learned: each trained keep set's accuracy,
    normalised by that study's own re-aligned full model (averaged where studies overlap).
    Prior knowledge for the screened sampler, never results of this study."""
    values: dict[tuple[int, ...], list[float]] = {}
    for name in names:
        study = stored_study(name, storage)
        if study is None:
            raise StudyError(
                f"--warm-start study {name!r} does not exist; see `autoprune list studies`"
            )
        stored = settings_of(study)
        if stored.get("model") != model or stored["space"]["num_layers"] != num_layers:
            raise AutoPruneError(
                f"--warm-start study {name!r} searched {stored.get('model')}, not {model}; a "
                "warm start needs a study of the same model"
            )
        reference = study.user_attrs.get(REFERENCE_ATTR)
        trials = trained_trials(study)
        if not reference or not trials:
            raise StudyError(f"--warm-start study {name!r} has no trained trials yet")
        objective = stored["objectives"][0]
        full = reference["realigned"][objective]
        for t in trials:
            values.setdefault(tuple(t.user_attrs["keep"]), []).append(
                t.user_attrs[objective] / full
            )
    return {keep: float(np.mean(v)) for keep, v in values.items()}


def ensure_reference(prep: Prepared, log: Callable[[str], None] = print) -> dict:
    """Latency profile and the full model, zero-shot and re-aligned, on the validation split,
    computed once per study. Their test metrics wait for the end (`reference_test`): nothing
    only the final report needs runs before the first trial."""
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
    log("evaluating the full model zero-shot ...")
    model, zero_shot = run_trial(ctx, everything, realign_model=False)
    del model
    log(f"re-aligning the full model ({ctx.space.realign.steps} steps, as every trial) ...")
    model, realigned = run_trial(ctx, everything)
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
    """The full model's test metrics, zero-shot and re-aligned (same budget and seed, so the
    same model as the reference), computed once, when the search is over."""
    study, ctx = prep.study, prep.ctx
    reference = dict(study.user_attrs[REFERENCE_ATTR])
    everything = tuple(range(ctx.adapter.num_layers))
    # re-aligned first: with several datasets the zero-shot model's ratios are to its metrics
    for kind, realign_model in (("realigned", True), ("zero_shot", False)):
        if "test" in reference[kind]:
            continue
        log(f"evaluating the full model ({kind.replace('_', '-')}) on the test split ...")
        model = ctx.adapter.prune(everything).to(ctx.device)
        if realign_model:
            realign(ctx, model)
        reference[kind] = {**reference[kind], "test": test_metrics(ctx, model)}
        del model
        free_memory()
        study.set_user_attr(REFERENCE_ATTR, reference)
        know_full(ctx, reference)
    return reference


def front_test(prep: Prepared, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Test metrics of every front keep set, stored in the study by keep set and computed once
    (`keep_test`): costly (`report.front_test_estimate`), so only on request. Never used to
    select: the rule reads validation metrics only."""
    trials, mask = front_of(prep.study)
    for trial in (t for t, on_front in zip(trials, mask, strict=True) if on_front):
        keep_test(prep, tuple(trial.user_attrs["keep"]), f"trial {trial.number}", log)
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


def screen_table(prep: Prepared, log: Callable[[str], None] = print) -> dict:
    """Zero-shot screen of the study's candidate pool and of the full model, computed once and
    cached in the study folder, so a resumed run or a second process reuses it."""
    ctx = prep.ctx
    pool_sets = candidate_pool(ctx.space, prep.settings["seed"])
    everything = tuple(range(ctx.adapter.num_layers))
    cache = study_dir(prep.name) / "screen.json"
    key = {k: prep.settings[k] for k in RESUME_KEYS if k in prep.settings}
    key |= {"windows": SCREEN_WINDOWS}
    try:
        cached = json.loads(cache.read_text()) if cache.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        cached = {}  # damaged (a copy cut short, a full disk): the cache is rebuilt
    if cached.get("key") == key:
        return {tuple(map(int, k.split())): v for k, v in cached["sets"].items()}
    log(
        f"screening {len(pool_sets):,} keep sets zero-shot (once per study"
        + (f", on each of {len(ctx.datasets)} datasets" if ctx.more else "")
        + ") ..."
    )
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
            [*pool_sets, everything],
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


def screened_sampler(prep: Prepared, log: Callable[[str], None] = print) -> ScreenedSampler:
    """The multi-fidelity sampler: the zero-shot screen, then proposals by EHVI."""
    ctx, objectives = prep.ctx, prep.settings["objectives"]
    table = screen_table(prep, log)
    everything = tuple(range(ctx.adapter.num_layers))
    pool_sets = [k for k in table if k != everything]
    reference = prep.study.user_attrs[REFERENCE_ATTR]["realigned"]
    full = np.array(full_values(prep.study.user_attrs[REFERENCE_ATTR], objectives))
    accuracy = accuracy_index(objectives)
    costs = [o for o in objectives if o not in METRICS]
    cost_values = np.array(
        [
            [
                (ctx.adapter.params(k) if o == "params" else predict_latency(ctx.profile, len(k)))
                / reference[o]
                for o in costs
            ]
            for k in pool_sets
        ]
    )
    screen_values = np.array([table[k]["mase"] for k in pool_sets]) / table[everything]["mase"]
    pool = Pool.build(pool_sets, cost_values, screen_values, ctx.adapter.num_layers)
    hv_ref = hv_reference(objectives)
    ordered_ref = np.r_[hv_ref[accuracy], [hv_ref[objectives.index(o)] for o in costs]]
    return ScreenedSampler(
        pool,
        full,
        ordered_ref,
        accuracy,
        fallback=optuna.samplers.RandomSampler(seed=prep.settings["seed"]),
        warm=prep.warm,
    )


def choose(study: optuna.Study, rule_text: str) -> tuple[optuna.trial.FrozenTrial, Rule] | None:
    """The front trial `rule` picks, from the storage alone; None before any trial."""
    objectives = settings_of(study)["objectives"]
    rule = parse_rule(rule_text, objectives)
    reference = study.user_attrs.get(REFERENCE_ATTR)
    trials, mask = front_of(study)
    if not reference or not mask.any():
        return None
    front = [t for t, m in zip(trials, mask, strict=True) if m]
    values = np.array([t.values for t in front])
    index = select(rule, objectives, values, full_values(reference, objectives))
    if index is None:
        cheapest = values[values[:, objectives.index(rule.objective)].argmin()]
        described = ", ".join(f"{o}={v:g}" for o, v in zip(objectives, cheapest, strict=True))
        raise StudyError(
            f"no configuration on the front meets {rule}; the cheapest has {described}"
        )
    return front[index], rule


def selection_is_current(study: optuna.Study, rule_text: str) -> bool:
    """Whether the stored selection is what `rule` picks from the front as it is now."""
    previous = study.user_attrs.get(SELECTION_ATTR)
    picked = choose(study, rule_text)
    return bool(
        previous
        and picked
        and previous["trial"] == picked[0].number
        and previous["rule"] == str(picked[1])
        and read_metadata(selected_checkpoint(study))
    )


def finalize(prep: Prepared, rule_text: str, log: Callable[[str], None] = print) -> dict | None:
    """Select from the front by `rule`, evaluate the selection once on the test split, and keep
    its checkpoint under `studies/<name>/selected/`."""
    study = prep.study
    remove_leftovers(study_dir(prep.name))  # of a checkpoint a killed run was writing
    if study.user_attrs.get(REFERENCE_ATTR):
        reference_test(prep, log)
    if selection_is_current(study, rule_text):
        return study.user_attrs[SELECTION_ATTR]
    picked = choose(study, rule_text)
    if picked is None:
        return None
    chosen, rule = picked
    objectives = prep.settings["objectives"]
    checkpoint = study_dir(prep.name) / "selected"
    log(f"re-training the selected keep set {chosen.user_attrs['keep']} and evaluating it on "
        "the test split ...")  # fmt: skip
    reference = full_values(study.user_attrs[REFERENCE_ATTR], objectives)
    selection = write_trial(
        prep,
        chosen,
        checkpoint,
        {
            "rule": str(rule),
            "rule_met": rule_met(rule, objectives, chosen.values, reference),
            "values": {
                o: objective_value(o, v) for o, v in zip(objectives, chosen.values, strict=True)
            },
            "checkpoint": str(checkpoint.relative_to(study_dir(prep.name))),
        },
    )
    store_front_test(study, selection["keep"], selection["test"])
    study.set_user_attr(SELECTION_ATTR, selection)
    return selection


def write_trial(
    prep: Prepared, trial: optuna.trial.FrozenTrial, out: Path, about: dict | None = None
) -> dict:
    """Re-train a trial's keep set as its trial did (same seed and budget, so the same model),
    measure it on the validation and test splits, and write its checkpoint to `out` with
    `autoprune.json` and a model card. Returns what was measured, with `about` (the selection
    rule, for a selection) merged in."""
    keep = tuple(trial.user_attrs["keep"])
    model, record = run_trial(prep.ctx, keep, test=True)
    measured = {
        **(about or {}),
        "trial": trial.number,
        "keep": list(keep),
        "val": {m: record[m] for m in METRICS}
        | ({"datasets": record["datasets"]} if "datasets" in record else {}),
        "val_reproduced": record[prep.settings["objectives"][0]] == trial.values[0],
        "test": record["test"],
        "latency_ms": record["latency_ms"],
        "latency_measured_ms": record["latency_measured_ms"],
        "latency_off_profile": record["latency_off_profile"],
    }
    write_checkpoint(prep.ctx.adapter, model, out, checkpoint_metadata(prep, measured))
    del model
    free_memory()
    return measured


def export_trial(
    name: str,
    storage: str | None,
    number: int,
    out: Path,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """`autoprune export --trial N`: that trial's checkpoint, re-trained (`write_trial`)."""
    study = load_study(name, storage)
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or "keep" not in trial.user_attrs or trial.state.name != "COMPLETE":
        raise AutoPruneError(f"study {name!r} has no completed trial {number}; see its trials.csv")
    prep = prepared_from_study(name, storage, device)
    ensure_reference(prep, log)
    log(f"re-training keep set {trial.user_attrs['keep']} and evaluating it on the test split ...")
    return write_trial(prep, trial, out)


HOLDOUT_MODELS = ("selection", "full_zero_shot", "full_realigned")


def holdout_test(prep: Prepared, log: Callable[[str], None] = print) -> dict:
    """The selection and the full model, zero-shot and re-aligned (on this study's data, as
    the reference), forecast on the test split of each held-out dataset, which no
    re-alignment or selection has seen: is the pruned model still a foundation model? Same
    setting (context, horizon, patch) as the study; computed once per selection and stored."""
    study, ctx = prep.study, prep.ctx
    selection = study.user_attrs.get(SELECTION_ATTR)
    stored = dict(study.user_attrs.get(HOLDOUT_ATTR, {}))
    todo = {
        name: series
        for name, series in prep.holdout.items()
        if selection and stored.get(name, {}).get("keep") != selection["keep"]
    }
    if not todo:
        return stored
    everything = tuple(range(ctx.adapter.num_layers))
    fresh = {name: {"dataset": s.name, "keep": selection["keep"]} for name, s in todo.items()}
    for label in HOLDOUT_MODELS:
        model = ctx.adapter.prune(tuple(selection["keep"]) if label == "selection" else everything)
        model = model.to(ctx.device)
        if label != "full_zero_shot":
            log(f"re-training the {label.replace('_', ' ')} for the held-out datasets ...")
            realign(ctx, model)
        for name, series in todo.items():
            log(f"evaluating the {label.replace('_', ' ')} on held-out {name} (test split) ...")
            fresh[name][label] = evaluate(
                ctx.adapter,
                model,
                series,
                "test",
                ctx.setting,
                max_windows=None,
                num_samples=ctx.space.num_samples,
            )
        del model
        free_memory()
    study.set_user_attr(HOLDOUT_ATTR, stored | fresh)
    return stored | fresh


def checkpoint_metadata(prep: Prepared, selection: dict) -> dict:
    """`autoprune.json` of a checkpoint: enough to evaluate it again and to write its model card
    (`card.py`). `rule` is None for a trial exported by hand."""
    settings, adapter = prep.settings, prep.ctx.adapter
    model, dataset = settings["model"], settings["dataset"]
    entry = MODELS.get(model)
    reference = prep.study.user_attrs.get(REFERENCE_ATTR, {})
    return {
        "autoprune_version": __version__,
        "study": prep.name,
        "trial": selection["trial"],
        "rule": selection.get("rule"),
        "rule_met": selection.get("rule_met"),
        "trials": len(trained_trials(prep.study)),
        "base_model": model,
        "base_model_name": model if entry else Path(model).name,
        "hub_id": hub_id(model),
        "family": adapter.family,
        "license": entry.license if entry else None,
        "keep": selection["keep"],
        "num_layers_before": adapter.num_layers,
        "dataset": dataset,
        "dataset_name": " + ".join(series.name for series in prep.ctx.datasets),
        "datasets": [series.name for series in prep.ctx.datasets],
        "aggregate": settings.get("aggregate"),
        "dataset_options": settings["dataset_options"],
        "splits": {
            f"{series.name} {split}" if prep.ctx.more else split: list(rows)
            for series in prep.ctx.datasets
            for split, rows in series.borders.items()
        },
        "setting": settings["setting"],
        "objectives": settings["objectives"],
        "sampler": settings["sampler"],
        "fidelity": settings["fidelity"],
        "space_file": settings["space_file"],
        "val_windows": settings["evaluation"]["val_windows"],
        "num_samples": settings["evaluation"]["num_samples"],
        "realign": settings["realign"],
        "seed": settings["seed"],
        "params": adapter.params(selection["keep"]),
        "params_before": adapter.params(),
        "val": selection["val"],
        "test": selection["test"],
        "reference": {
            kind: {"val": {m: full[m] for m in METRICS}, "test": full.get("test")}
            for kind, full in reference.items()
        },
    }


def hub_id(model: str) -> str | None:
    """The Hugging Face id a model came from: an alias's, or the one given; None for a folder."""
    entry = MODELS.get(model)
    source = entry.source if entry else model
    is_id = source.count("/") == 1 and not source.startswith((".", "/", "~"))
    return source if is_id and not Path(source).exists() else None


def search(
    opts: SearchOptions,
    log: Callable[[str], None] = print,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial | None], None] = lambda s, t: None,
    prepared: Prepared | None = None,
) -> dict:
    """Run or resume a study to `opts.trials` trained keep sets, then select and test."""
    prep = prepared or prepare(opts)
    start = time.perf_counter()
    ensure_reference(prep, log)
    priors(prep, list(METHODS), log)  # one calibration pass: the report's importance chart
    if prep.sampler == "screened":
        prep.study.sampler = screened_sampler(prep, log)
    if opts.enqueue:
        from autoprune.baselines import enqueue_seeds

        kinds = [k.strip() for k in opts.enqueue.split(",") if k.strip()]
        if queued := enqueue_seeds(prep, kinds):
            log(f"queued {queued} one-shot keep sets ({', '.join(kinds)}) as the first trials")
    target = opts.trials or DEFAULT_TRIALS
    if opts.continue_stopped:
        queued = enqueue_stopped(prep.study, prep.ctx.space)
        log(f"continuing {queued} keep sets stopped at a rung to the full budget")
        target = max(target, len(trained_trials(prep.study)) + queued)
    if opts.backend == "ray":
        from autoprune.backends import ray as ray_backend

        url = storage_url(prep.name, opts.storage)
        options = ray_options(opts)
        stopped = ray_backend.run(prep.study, prep.ctx, target, url, options, on_trial)
    else:
        stopped = local.run(prep.study, prep.ctx, target, on_trial)
    selection = finalize(prep, prep.rule, log)
    holdout_test(prep, log)
    return {
        "study": prep.name,
        "stopped": stopped,
        "selection": selection,
        "seconds": time.perf_counter() - start,
    }


def enqueue_stopped(study: optuna.Study, space) -> int:
    """Queue every keep set stopped at a rung, and not trained since, for the full budget."""
    trained = {tuple(t.user_attrs["keep"]) for t in trained_trials(study)}
    stopped = {
        tuple(t.user_attrs["keep"])
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
        if STOPPED_ATTR in t.user_attrs
    }
    for keep in sorted(stopped - trained):
        study.enqueue_trial(space.params_of(keep), user_attrs={FULL_BUDGET_ATTR: True})
    return len(stopped - trained)


def prepared_from_study(
    name: str, storage: str | None, device: str = "auto", threads: int | None = None
) -> Prepared:
    """Re-open an existing study with its own settings (report, export of another trial)."""
    stored, _ = _stored(validate_name(name), storage)
    if not stored:
        raise StudyError(f"study {name!r} has no autoprune settings; was it made by autoprune?")
    opts = SearchOptions(study=name, storage=storage, device=device, threads=threads)
    return prepare(opts)
