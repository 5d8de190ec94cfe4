"""Options of `autoprune search`, resolved against the stored study, then the study opened.

Options left unset when resuming are taken from the study, so "resuming is running the same
command again" holds even when the first command relied on defaults. Settings that make trials
comparable (model, dataset, forecast setting, objectives, re-alignment budget, seed) cannot
change within a study; the sampler, backend, device and trial target can.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autoprune import __version__
from autoprune.baselines import check_kinds
from autoprune.data import Series, load_series
from autoprune.errors import AutoPruneError, StudyError
from autoprune.evaluate import Setting, resolve_device
from autoprune.metrics import METRICS
from autoprune.models import load_adapter, weights_sha256
from autoprune.objective import (
    AGGREGATES,
    TrialContext,
)
from autoprune.pareto import (
    default_rule,
    parse_rule,
)
from autoprune.record import TrialRecord
from autoprune.samplers import DEFAULT_SAMPLER, SAMPLERS
from autoprune.search.prepared import Prepared
from autoprune.space import space_for_model
from autoprune.study import (
    REFERENCE_ATTR,
    create_or_resume,
    model_named,
    same_model,
    settings_of,
    stored_study,
    trained_trials,
    validate_name,
)

DEFAULT_MODEL = "moirai-tiny"
DEFAULT_DATASET = "etth1"
# the trained keep sets of a search without --trials or --compute: DEFAULT_TRIALS, then on while
# the front is still growing (`search.run.growing_target`), to at most DEFAULT_TRIALS_MAX. On the
# default study, 30 trials take 49-82 s of compute on this project's 2-core host and 45 take
# 84-122 s, within its 3 minutes (docs/default-run.md)
DEFAULT_TRIALS = 30
DEFAULT_TRIALS_MAX = 45
DEFAULT_SEED = 0
BACKENDS = ("local", "ray")
# multi: a keep set gets a short re-alignment first and goes on to the full budget only while it
# can still reach the front (objective.stop_rule); single: every keep set gets the full budget.
# multi is the default: designed on the ETTh1 table, it needed less compute than single to 95%
# of the true hypervolume on the ETTh2 and exchange-rate tables too (docs/search-efficiency.md)
FIDELITIES = ("multi", "single")
DEFAULT_FIDELITY = "multi"
# the screened sampler's zero-shot screen: when it pays (`search.run.screen_allowance`), always,
# never
SCREENS = ("auto", "on", "off")


@dataclass
class SearchOptions:
    study: str | None = None
    model: str | None = None
    dataset: str | None = None
    target: str | None = None
    freq: str | None = None
    split: str | None = None
    trials: int | None = None
    compute: float | None = None  # seconds of search compute, all runs (`search_seconds`)
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
    screen: str | None = None  # auto (default), on, off: the screened sampler's zero-shot screen
    continue_stopped: bool = False
    holdout_dataset: str | None = None
    aggregate: str | None = None  # several datasets: geomean (default) or worst


def default_study_name(model: str, dataset: str) -> str:
    stem = _model_name(model)
    data = Path(dataset).stem if dataset.lower().endswith(".csv") else dataset
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{data}").strip("-.")[:100]


def _stored(name: str, storage: str | None) -> dict:
    """The settings a study was created with ({} if new)."""
    study = stored_study(name, storage, read_only=False)
    return settings_of(study) if study else {}


def _model_name(model: str) -> str:
    """An alias or hub id as given; a local model directory by its folder name."""
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
    if opts.compute is not None and not opts.compute > 0:
        raise AutoPruneError(f"--compute {opts.compute:g} must be a positive number of seconds")
    if opts.threads is not None and opts.threads < 1:
        raise AutoPruneError(f"--threads {opts.threads} must be at least 1")
    check_backend(opts)
    name = validate_name(
        opts.study
        or default_study_name(opts.model or DEFAULT_MODEL, opts.dataset or DEFAULT_DATASET)
    )
    stored = _stored(name, opts.storage)
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
    sampler = SAMPLERS.check(opts.sampler or stored.get("sampler") or DEFAULT_SAMPLER)
    fidelity = opts.fidelity or stored.get("fidelity") or DEFAULT_FIDELITY
    if fidelity not in FIDELITIES:
        raise AutoPruneError(f"--fidelity {fidelity!r} is unknown; use {' or '.join(FIDELITIES)}")
    screen = opts.screen or stored.get("screen") or SCREENS[0]
    if screen not in SCREENS:
        raise AutoPruneError(f"--screen {screen!r} is unknown; use {', '.join(SCREENS)}")
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
    space = space_for_model(_model_name(model), adapter.num_layers, space_file, adapter.always_keep)
    if stored and not space_file:  # a study keeps the layers it kept, whatever the default is now
        space = dataclasses.replace(space, always_keep=tuple(stored["space"]["always_keep"]))
    if objective:
        space = space.with_objectives(
            [objective, *(o for o in space.objectives if o not in METRICS)]
        )
    rule = opts.rule or default_rule(space.objectives)
    parse_rule(rule, space.objectives)  # a bad rule fails now, not after the trials
    if opts.enqueue:
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
        "weights_sha256": weights_sha256(adapter.source),
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
        "screen": screen,
    }
    if more:
        settings["aggregate"] = aggregate
    warm = warm_knowledge(warm_names, opts.storage, settings)
    holdout = holdout_series(opts.holdout_dataset, names, [series, *more], setting)
    study = create_or_resume(name, opts.storage, settings)
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
    names: Sequence[str], storage: str | None, settings: dict
) -> dict[str, dict[tuple[int, ...], float]]:
    """What finished studies of the model `settings` names (`same_model`, the same layers)
    learned, per study: each trained keep set's accuracy, normalised by that study's own
    re-aligned full model (averaged where a study trained a keep set twice). Prior knowledge
    for the screened sampler, never results of this study; the sampler follows the study whose
    knowledge best predicts this one's trials."""
    learned = {}
    for name in names:
        study = stored_study(name, storage)
        if study is None:
            raise StudyError(
                f"--warm-start study {name!r} does not exist; see `autoprune list studies`"
            )
        stored = settings_of(study)
        same_layers = stored["space"]["num_layers"] == settings["space"]["num_layers"]
        if not same_model(stored, settings) or not same_layers:
            raise AutoPruneError(
                f"--warm-start study {name!r} searched {model_named(stored)}, not "
                f"{model_named(settings)}; a warm start needs a study of the same model"
            )
        reference = study.user_attrs.get(REFERENCE_ATTR)
        trials = trained_trials(study)
        if not reference or not trials:
            raise StudyError(f"--warm-start study {name!r} has no trained trials yet")
        objective = stored["objectives"][0]
        full = reference["realigned"][objective]
        values: dict[tuple[int, ...], list[float]] = {}
        for t in trials:
            record = TrialRecord.of(t)
            values.setdefault(record.keep_set, []).append(record.metric(objective) / full)
        learned[name] = {keep: float(np.mean(v)) for keep, v in values.items()}
    return learned


def prepared_from_study(
    name: str, storage: str | None, device: str = "auto", threads: int | None = None
) -> Prepared:
    """Re-open an existing study with its own settings (report, export of another trial)."""
    stored = _stored(validate_name(name), storage)
    if not stored:
        raise StudyError(f"study {name!r} has no autoprune settings; was it made by autoprune?")
    opts = SearchOptions(study=name, storage=storage, device=device, threads=threads)
    return prepare(opts)
