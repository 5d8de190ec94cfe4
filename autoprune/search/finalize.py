"""The end of a search: the selected keep set re-trained (same seed and budget, so the same
model as its trial), tested and written as a checkpoint with its card; the same path exports
any other trial; held-out datasets forecast by the selection and the full model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna

from autoprune import __version__
from autoprune.errors import AutoPruneError
from autoprune.evaluate import evaluate
from autoprune.export import (
    check_destination,
    copy_checkpoint,
    read_metadata,
    remove_leftovers,
    write_checkpoint,
)
from autoprune.metrics import METRICS
from autoprune.models import MODELS, load_adapter
from autoprune.objective import free_memory, measure_latency, run_trial
from autoprune.pareto import rule_met
from autoprune.record import TrialRecord
from autoprune.search.cached import (
    drop_realigned_full,
    ensure_reference,
    realigned_full,
    reference_test,
    store_front_test,
)
from autoprune.search.front import choose, selection_is_current
from autoprune.search.options import prepared_from_study
from autoprune.search.prepared import Prepared
from autoprune.space import objective_value
from autoprune.study import (
    FRONT_LATENCY_ATTR,
    HOLDOUT_ATTR,
    REFERENCE_ATTR,
    SELECTION_ATTR,
    front_of,
    full_values,
    keep_key,
    load_study,
    search_seconds,
    selected_checkpoint,
    spending,
    study_dir,
    trained_trials,
)


def finalize(prep: Prepared, rule_text: str, log: Callable[[str], None] = print) -> dict | None:
    """Select from the front by `rule`, evaluate the selection once on the test split, keep its
    checkpoint under `studies/<name>/selected/`, and forecast the held-out datasets. The full
    model's test metrics come first (`reference_test`); the re-aligned full model is dropped
    only once the held-out datasets have used it too."""
    study = prep.study
    remove_leftovers(study_dir(prep.name))  # of a checkpoint a killed run was writing
    if study.user_attrs.get(REFERENCE_ATTR):
        reference_test(prep, log)
    selection = select(prep, rule_text, log)
    measure_front(prep, log)
    holdout_test(prep, log)
    drop_realigned_full(prep)
    return selection


def select(prep: Prepared, rule_text: str, log: Callable[[str], None]) -> dict | None:
    """The selection by `rule_text`, stored; re-trained, tested and written only when the
    stored one is not current."""
    study = prep.study
    if selection_is_current(study, rule_text):
        return study.user_attrs[SELECTION_ATTR]
    picked = choose(study, rule_text)
    if picked is None:
        return None
    chosen, rule = picked
    objectives = prep.settings["objectives"]
    checkpoint = study_dir(prep.name) / "selected"
    log(f"re-training the selected keep set {TrialRecord.of(chosen).keep} and evaluating it on "
        "the test split ...")  # fmt: skip
    reference = full_values(study.user_attrs[REFERENCE_ATTR], objectives)
    with spending(study, "selection"):
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


def measure_front(prep: Prepared, log: Callable[[str], None]) -> None:
    """Time the forward pass of each front keep set not measured yet, stored by keep set for
    the report (FRONT_LATENCY_ATTR). A search's trials are not timed (`run_trial`: the
    objective is the latency profile's prediction), so this is where the report checks the
    profile against the machine, on the keep sets a user would deploy. A keep set is pruned,
    not re-aligned: its latency depends on the layers it keeps, not on their weights. The
    selection was timed with its re-training (`write_trial`): that measurement is its."""
    study, ctx = prep.study, prep.ctx
    trials, mask = front_of(study)
    before = study.user_attrs.get(FRONT_LATENCY_ATTR, {})
    stored = dict(before)
    keeps = [TrialRecord.of(t).keep_set for t, m in zip(trials, mask, strict=True) if m]
    selection = study.user_attrs.get(SELECTION_ATTR) or {}
    if selection.get("latency_measured_ms") is not None and tuple(selection["keep"]) in keeps:
        stored.setdefault(keep_key(selection["keep"]), selection["latency_measured_ms"])
    todo = [keep for keep in keeps if keep_key(keep) not in stored]
    if todo:
        log(f"measuring the latency of {len(todo)} front keep set{'s' * (len(todo) != 1)} ...")
        with spending(study, "front latency"):
            for keep in todo:
                model = ctx.adapter.prune(keep).to(ctx.device)
                stored[keep_key(keep)] = measure_latency(ctx, model)
                del model
    if stored != before:
        study.set_user_attr(FRONT_LATENCY_ATTR, stored)


def write_trial(
    prep: Prepared, trial: optuna.trial.FrozenTrial, out: Path, about: dict | None = None
) -> dict:
    """Re-train a trial's keep set as its trial did (same seed and budget, so the same model),
    measure it on the validation and test splits, and write its checkpoint to `out` with
    `autoprune.json` and a model card. Returns what was measured, with `about` (the selection
    rule, for a selection) merged in."""
    keep = TrialRecord.of(trial).keep_set
    model, record = run_trial(prep.ctx, keep, test=True, measure=True)
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
    if trial is None or TrialRecord.of(trial).keep is None or trial.state.name != "COMPLETE":
        raise AutoPruneError(f"study {name!r} has no completed trial {number}; see its trials.csv")
    prep = prepared_from_study(name, storage, device)
    ensure_reference(prep, log)
    log(
        f"re-training keep set {TrialRecord.of(trial).keep} and evaluating it on the test split ..."
    )
    return write_trial(prep, trial, out)


HOLDOUT_MODELS = ("selection", "full_zero_shot", "full_realigned")
FULL_MODELS = HOLDOUT_MODELS[1:]  # the same whatever the selection


def holdout_test(prep: Prepared, log: Callable[[str], None] = print) -> dict:
    """The selection and the full model, zero-shot and re-aligned (on this study's data, as
    the reference), forecast on the test split of each held-out dataset, which no
    re-alignment or selection has seen: is the pruned model still a foundation model? Same
    setting (context, horizon, patch) as the study; the selection's computed once per
    selection, the full model's once per dataset (a new selection does not change them), and
    stored. The selection is its saved checkpoint, reloaded (not trained again)."""
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
    fresh = {
        name: {"dataset": s.name, "keep": selection["keep"]}
        | {label: m for label, m in stored.get(name, {}).items() if label in FULL_MODELS}
        for name, s in todo.items()
    }
    for label in HOLDOUT_MODELS:
        missing = {name: series for name, series in todo.items() if label not in fresh[name]}
        if not missing:
            continue
        with spending(study, "held-out"):
            adapter = ctx.adapter
            if label == "selection":  # the checkpoint `finalize` wrote, as a user reloads it
                adapter = load_adapter(str(selected_checkpoint(study)))
            if label == "full_realigned":  # the model `ensure_reference` kept, if it is there
                model = realigned_full(prep, log, "for the held-out datasets")
            else:
                model = adapter.prune(tuple(range(adapter.num_layers))).to(ctx.device)
            for name, series in missing.items():
                log(f"evaluating the {label.replace('_', ' ')} on held-out {name} (test split) ...")
                fresh[name][label] = evaluate(
                    adapter,
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
        "search_compute_s": round(search_seconds(prep.study), 1),
        "base_model": model,
        "base_model_name": model if entry else Path(model).name,
        "base_weights_sha256": settings.get("weights_sha256"),
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
        "warm_start": settings.get("warm_start"),
        "screen": settings.get("screen", "auto"),
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


def export(
    name: str,
    storage: str | None,
    out: Path,
    trial: int | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """`autoprune export`: the selected checkpoint copied to `out`, or trial N's re-trained
    (`export_trial`). Returns the trial number and keep set exported."""
    check_destination(out)
    study = load_study(name, storage)
    if trial is not None:
        exported = export_trial(name, storage, trial, out, device, log)
        return {"trial": trial, "keep": exported["keep"]}
    checkpoint = selected_checkpoint(study)
    if not checkpoint or not read_metadata(checkpoint):
        raise AutoPruneError(
            f"study {name!r} has no selected checkpoint yet; run `autoprune report {name}` "
            "first or pass --trial N"
        )
    copy_checkpoint(checkpoint, out)
    selection = study.user_attrs[SELECTION_ATTR]
    return {"trial": selection["trial"], "keep": selection["keep"]}
