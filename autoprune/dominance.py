"""How few layers are enough, per dataset: the few-layer-dominance table.

It tests Qiu et al. 2025's claim that a small fraction (fewer than 30%) of a time-series
foundation model's layers is comparable to the whole model in most tasks, under a fair protocol:
against the full model re-aligned with the same budget as every keep set, not only zero-shot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import optuna

from autoprune.errors import AutoPruneError
from autoprune.export import atomic_write_figure, atomic_write_text
from autoprune.metrics import accuracy_index
from autoprune.pareto import non_dominated
from autoprune.record import TrialRecord
from autoprune.search.cached import (
    drop_realigned_full,
    ensure_reference,
    keep_test,
    reference_test,
)
from autoprune.search.options import prepared_from_study
from autoprune.search.prepared import Prepared
from autoprune.study import settings_of, trained_trials

LEVELS = (1.0, 2.0, 5.0)  # percent
REFERENCES = ("realigned", "zero_shot")
CLAIM_FRACTION = 0.3  # "fewer than 30% of layers"


def parse_levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        levels = ()
    if not levels or not all(0 <= level < 100 and np.isfinite(level) for level in levels):
        raise AutoPruneError(
            f"--levels {text!r} must be percentages from 0 to below 100, e.g. 1,2,5"
        )
    return levels


def candidates(study: optuna.Study, accuracy: str) -> list[tuple[int, TrialRecord]]:
    """Trained keep sets (trial number, record) on the (accuracy, kept layers) front, fewest
    layers first."""
    trials = [(t.number, TrialRecord.of(t)) for t in trained_trials(study)]
    if not trials:
        return []
    points = np.array([[r.metric(accuracy), len(r.keep)] for _, r in trials])
    front = [t for t, on in zip(trials, non_dominated(points), strict=True) if on]
    return sorted(front, key=lambda t: (len(t[1].keep), t[1].metric(accuracy)))


def study_dominance(
    prep: Prepared, levels: Sequence[float], log: Callable[[str], None] = print
) -> dict:
    """One study's row of the table: per reference (the full model re-aligned with the same
    budget as every keep set, and the full model zero-shot) and level x, the smallest kept
    fraction of layers whose validation AND test accuracy are both within x% of that model's.
    Candidates (`candidates`) are tried smallest first; a candidate's test metrics are computed
    only when its validation accuracy qualifies (`search.cached.keep_test`, stored in the study,
    so a second run re-trains nothing)."""
    study, adapter = prep.study, prep.ctx.adapter
    objectives = settings_of(study)["objectives"]
    accuracy = objectives[accuracy_index(objectives)]
    ensure_reference(prep, log)
    reference = reference_test(prep, log)
    drop_realigned_full(prep)
    layers = adapter.num_layers
    front = candidates(study, accuracy)
    answers = []
    for kind in REFERENCES:
        full_val, full_test = reference[kind][accuracy], reference[kind]["test"][accuracy]
        for level in levels:
            bound = 1 + level / 100
            found = None
            for number, record in front:
                if record.metric(accuracy) > bound * full_val:
                    continue
                test = keep_test(prep, record.keep, f"trial {number}", log)[accuracy]
                if test <= bound * full_test:
                    found = (number, record, test)
                    break
            answer = {"reference": kind, "level": level, "found": found is not None}
            if found:
                number, record, test = found
                keep = record.keep
                answer |= {
                    "trial": number,
                    "keep": keep,
                    "kept_layers": len(keep),
                    "kept_fraction": len(keep) / layers,
                    "params_fraction": adapter.params(keep) / adapter.params(),
                    "val_ratio": record.metric(accuracy) / full_val,
                    "test_ratio": test / full_test,
                }
            answers.append(answer)
    realigned = reference["realigned"]
    return {
        "study": prep.name,
        "dataset": " + ".join(series.name for series in prep.ctx.datasets),
        "model": prep.settings["model"],
        "num_layers": layers,
        "accuracy": accuracy,
        "trained": len(trained_trials(study)),
        "full": {
            kind: {"val": reference[kind][accuracy], "test": reference[kind]["test"][accuracy]}
            for kind in REFERENCES
        },
        "front": [
            {
                "trial": number,
                "kept_fraction": len(record.keep) / layers,
                "val_ratio": record.metric(accuracy) / realigned[accuracy],
            }
            for number, record in front
        ],
        "answers": answers,
    }


def dominance(
    names: Sequence[str],
    storage: str | None,
    levels: Sequence[float] = LEVELS,
    device: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    rows = []
    for name in names:
        log(f"{name}: ...")
        prep = prepared_from_study(name, storage, device, threads)
        rows.append(study_dominance(prep, levels, log))
    claim = {}
    for kind in REFERENCES:
        for level in levels:
            hits = [
                a
                for row in rows
                for a in row["answers"]
                if a["reference"] == kind and a["level"] == level
            ]
            few = sum(a["found"] and a["kept_fraction"] < CLAIM_FRACTION for a in hits)
            claim[f"{kind}@{level:g}%"] = {"datasets": len(hits), "below_30pct": few}
    return {"levels": list(levels), "studies": rows, "claim": claim}


def _cell(answer: dict) -> str:
    if not answer["found"]:
        return "none"
    return f"{answer['kept_layers']} ({answer['kept_fraction']:.0%})"


def markdown(result: dict) -> str:
    """The table: one row per dataset, one column per reference and level."""
    levels = result["levels"]
    names = {"realigned": "re-aligned", "zero_shot": "zero-shot"}
    header = ["dataset", "study", "layers", "trained"] + [
        f"{names[kind]} ≤{level:g}%" for kind in REFERENCES for level in levels
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in result["studies"]:
        cells = [row["dataset"], row["study"], str(row["num_layers"]), str(row["trained"])]
        cells += [_cell(a) for a in row["answers"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Each cell: the fewest kept layers (fraction of the model) whose validation and test "
        f"{result['studies'][0]['accuracy'] if result['studies'] else 'accuracy'} are both "
        "within x% of the full model's, re-aligned with the same budget or zero-shot; `none`: "
        "no trained keep set smaller than the full model is."
    )
    for key, value in result["claim"].items():
        kind, level = key.split("@")
        lines.append(
            f"- {names[kind]}, within {level}: below 30% of the layers in "
            f"{value['below_30pct']} of {value['datasets']} datasets"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Validation accuracy relative to the re-aligned full model against the kept fraction of
    layers, one line per study (its candidates), the levels and the 30% claim marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in result["studies"]:
        xs = [p["kept_fraction"] for p in row["front"]]
        ys = [p["val_ratio"] for p in row["front"]]
        (line,) = ax.plot(xs, ys, marker="o", label=row["dataset"])
        for answer in row["answers"]:
            if answer["found"] and answer["reference"] == "realigned":
                ax.plot(
                    answer["kept_fraction"],
                    answer["val_ratio"],
                    marker="*",
                    markersize=14,
                    color=line.get_color(),
                )
    for level in result["levels"]:
        ax.axhline(1 + level / 100, color="grey", linestyle=":", linewidth=1)
        ax.text(
            1.0,
            1 + level / 100,
            f" {level:g}%",
            va="center",
            fontsize=8,
            color="grey",
            transform=ax.get_yaxis_transform(),
        )
    ax.plot(1.0, 1.0, marker="s", color="black", linestyle="none", label="full model")
    ax.set_xlim(0, 1.05)
    ax.axvline(CLAIM_FRACTION, color="red", linestyle="--", linewidth=1, label="30% of layers")
    ax.set_xlabel("kept fraction of layers")
    ax.set_ylabel("val accuracy / re-aligned full model (lower is better)")
    ax.set_title(
        "Few-layer dominance (stars: fewest layers within x% of the re-aligned full model)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_write_figure(path, fig, dpi=120)


def write(result: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"dominance.json": out / "dominance.json", "dominance.md": out / "dominance.md"}
    atomic_write_text(paths["dominance.json"], json.dumps(result, indent=2))
    atomic_write_text(paths["dominance.md"], markdown(result))
    paths["dominance.png"] = plot(result, out / "dominance.png")
    return paths
