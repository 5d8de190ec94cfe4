"""Several studies' fronts on one yardstick, by compute: `autoprune compare A B ...`.

A study's `latency_ms` is its own latency profile's prediction, so two studies of one model and
dataset - another sampler, another fidelity, the same search on a busier machine - put the same
keep set at different latencies, and their hypervolumes are not comparable as stored. Here every
study's trained keep sets are re-scored with ONE latency profile and ONE full-model reference
(`--profile-from`, default the first study named): validation accuracy and parameters as
stored, latency predicted from the kept-layer count; the same reference point as the studies
(`pareto.hv_reference`) and the same validation protocol (the stored values). Each study's
hypervolume is then followed over the compute it spent (`report.compute_curve`), so the
question "which search reaches a good front for less" has one answer per study.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna

from autoprune.errors import AutoPruneError
from autoprune.export import atomic_write_figure, atomic_write_text
from autoprune.objective import predict_latency
from autoprune.pareto import hv_reference, hypervolume_curve, non_dominated, normalise
from autoprune.record import TrialRecord
from autoprune.report import compute_curve
from autoprune.study import (
    PROFILE_ATTR,
    REFERENCE_ATTR,
    model_named,
    same_model,
    settings_of,
    stopped_trials,
    trained_trials,
)

SHARE = 0.95  # compute to this share of the best final hypervolume among the studies


def rescored(study: optuna.Study, profile: dict, objectives: list[str]) -> np.ndarray:
    """The study's trained keep sets' objective values, latency from `profile`."""
    return np.array(
        [
            [
                predict_latency(profile, record.keep) if o == "latency_ms" else getattr(record, o)
                for o in objectives
            ]
            for record in map(TrialRecord.of, trained_trials(study))
        ]
    )


def compare(studies: dict[str, optuna.Study], profile_from: str | None = None) -> dict:
    """Each study's front and hypervolume over compute, every one on `profile_from`'s latency
    profile and full model (default the first study)."""
    judge_name = profile_from or next(iter(studies))
    if judge_name not in studies:
        raise AutoPruneError(f"--profile-from {judge_name!r} is not one of the studies compared")
    judge = studies[judge_name]
    settings = settings_of(judge)
    objectives = settings["objectives"]
    profile, reference = judge.user_attrs.get(PROFILE_ATTR), judge.user_attrs.get(REFERENCE_ATTR)
    if not profile or not reference:
        raise AutoPruneError(f"study {judge_name!r} has no trained full model yet to judge by")
    full_record = reference["realigned"]
    full = [
        predict_latency(profile, full_record["keep"]) if o == "latency_ms" else full_record[o]
        for o in objectives
    ]
    rows = {}
    for name, study in studies.items():
        other = settings_of(study)
        if not same_model(other, settings):
            raise AutoPruneError(
                f"study {name!r} has {model_named(other)}, not {model_named(settings)} as "
                f"{judge_name!r}: only studies of one model, dataset and objectives compare"
            )
        for key in ("dataset", "objectives"):
            if other.get(key) != settings.get(key):
                raise AutoPruneError(
                    f"study {name!r} has {key} {other.get(key)!r}, not {settings.get(key)!r} as "
                    f"{judge_name!r}: only studies of one model, dataset and objectives compare"
                )
        trained = trained_trials(study)
        if not trained:
            raise AutoPruneError(f"study {name!r} has no trained trials yet")
        points = normalise(rescored(study, profile, objectives), full)
        curve = hypervolume_curve(points, hv_reference(objectives))
        spent = compute_curve(study, trained)
        rows[name] = {
            "sampler": other.get("sampler"),
            "fidelity": other.get("fidelity"),
            "trained": len(trained),
            "stopped": len(stopped_trials(study)),
            "front": int(non_dominated(points).sum()),
            "hypervolume": curve[-1],
            "compute_s": spent[-1],
            "curve": curve,
            "curve_compute_s": spent,
        }
    best = max(row["hypervolume"] for row in rows.values())
    for row in rows.values():
        row["ratio_to_best"] = row["hypervolume"] / best if best else None
        reached = [
            s
            for h, s in zip(row["curve"], row["curve_compute_s"], strict=True)
            if h >= SHARE * best
        ]
        row[f"compute_s_to_{SHARE:.0%}_of_best"] = reached[0] if reached else None
    return {
        "profile_from": judge_name,
        "model": settings["model"],
        "dataset": settings["dataset"],
        "objectives": objectives,
        "studies": rows,
    }


def short(name: str) -> str:
    """A model or dataset as a title shows it: a directory or CSV by its last part."""
    return Path(name).name if "/" in name else name


def write(result: dict, out: Path) -> dict[str, Path]:
    """compare.json and compare.png (each study's hypervolume over compute) under `out`."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, row in result["studies"].items():
        label = f"{name} ({row['sampler']}, {row['fidelity']} fidelity)"
        ax.step(row["curve_compute_s"], row["curve"], where="post", marker=".", label=label)
    best = max(row["hypervolume"] for row in result["studies"].values())
    ax.axhline(SHARE * best, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("compute seconds (steps before the trials, then every trial)")
    ax.set_ylabel(f"hypervolume on {result['profile_from']}'s profile")
    ax.set_title(
        f"{short(result['model'])} on {short(result['dataset'])}: {SHARE:.0%} of the best dotted"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = {"compare.json": out / "compare.json", "compare.png": out / "compare.png"}
    atomic_write_text(paths["compare.json"], json.dumps(result, indent=2) + "\n")
    atomic_write_figure(paths["compare.png"], fig, dpi=120)
    return paths
