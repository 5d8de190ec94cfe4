"""Render a study from its storage alone (`write_report`). Nothing here trains or evaluates;
`pareto.py` computes, this module only reads the study and draws. `findings` says in plain
sentences what a user must not miss, the same in every output."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from html import escape
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from autoprune import __version__
from autoprune.export import atomic_write_figure, atomic_write_text, check_out, remove_leftovers
from autoprune.metrics import METRICS, SCALES
from autoprune.multifidelity import SCREEN_BACK, STALL
from autoprune.objective import LATENCY_TOLERANCE, latency_off_profile, predict_latency
from autoprune.pareto import hv_reference
from autoprune.record import TrialRecord
from autoprune.screen import skipped_sentence
from autoprune.space import objective_value
from autoprune.study import (
    BASELINES_ATTR,
    COMPUTE_ATTR,
    FRONT_LATENCY_ATTR,
    FRONT_TEST_ATTR,
    HOLDOUT_ATTR,
    PRIORS_ATTR,
    PROFILE_ATTR,
    REFERENCE_ATTR,
    SCREEN_SKIPPED_ATTR,
    SELECTION_ATTR,
    STEPS_BEFORE_TRIALS,
    WENT_ON_ATTR,
    compute_spent,
    front_of,
    hypervolume_curve_of,
    keep_key,
    settings_of,
)

BASELINE_SYMBOLS = {
    "drop-last": "triangle-down",
    "random": "circle-open",
    "screen": "hexagon",
    "bi": "triangle-up",
    "angular": "triangle-left",
    "cka": "triangle-right",
    "few-layer": "pentagon",
    "ablation": "cross",
}
LABELS = {
    "mase": "val MASE",
    "crps": "val CRPS (wQL)",
    "mse": "val MSE (standardised)",
    "mae": "val MAE (standardised)",
    "params": "parameters",
    "latency_ms": "latency (ms)",
}


def distilled(realign: dict) -> str:
    """The re-alignment mode where it is not plain data re-alignment."""
    if realign.get("mode", "data") != "distill":
        return ""
    return f", distilled from the full model (teacher weight {realign['distill_weight']})"


def _trial_row(
    trial: optuna.trial.FrozenTrial, objectives: list[str], datasets: list[str] = ()
) -> dict:
    record = TrialRecord.of(trial)
    keep = record.keep or []
    row = {
        "trial": trial.number,
        "state": trial.state.name,
        "keep": " ".join(map(str, keep)),
        "kept": len(keep),
    }
    for i, name in enumerate(objectives):
        row[name] = objective_value(name, trial.values[i]) if trial.values else None
    for metric in METRICS:
        row.setdefault(metric, record.metric(metric))
    for name in datasets:  # a multi-dataset study: each dataset's own metrics
        per = (record.datasets or {}).get(name, {})
        row.update({f"{name}_{metric}": per.get(metric) for metric in METRICS})
    measured = record.latency_measured_ms
    row.update(
        latency_measured_ms=measured,
        latency_off_profile=latency_off_profile(record.latency_ms, measured),
        wall_s=record.wall_s,
        lookup_of=record.lookup_of,
        baseline=record.baseline,
        fail_reason=record.fail_reason,
        started=trial.datetime_start.isoformat(timespec="seconds")
        if trial.datetime_start
        else None,
    )
    return row


def collect(study: optuna.Study) -> dict:
    """Everything the report shows, as plain data read from the study."""
    settings = settings_of(study)
    objectives = settings["objectives"]
    reference = study.user_attrs.get(REFERENCE_ATTR)
    trained, mask = front_of(study)
    front = [t for t, m in zip(trained, mask, strict=True) if m]
    front.sort(key=lambda t: tuple(t.values[1:]) + (t.values[0],))
    front_test = study.user_attrs.get(FRONT_TEST_ATTR, {})
    # measured at the end of a search (`finalize.measure_front`); a study from before that
    # timed every trial
    front_latency = study.user_attrs.get(FRONT_LATENCY_ATTR, {})
    front_records = [TrialRecord.of(t) for t in front]
    measured = [front_latency.get(keep_key(r.keep), r.latency_measured_ms) for r in front_records]
    everything = study.get_trials(deepcopy=False)
    states = [t.state for t in everything]
    records = [TrialRecord.of(t) for t in everything]
    summary = {
        "autoprune_version": __version__,
        "generated": datetime.now().isoformat(timespec="seconds"),
        "study": study.study_name,
        "model": settings["model"],
        "dataset": settings["dataset"],
        "setting": settings["setting"],
        "objectives": objectives,
        "realign": settings["realign"],
        "seed": settings["seed"],
        "sampler": settings.get("sampler"),
        "trials": {
            "trained": len(trained),
            "failed": states.count(TrialState.FAIL),
            "lookups": sum(
                state == TrialState.COMPLETE and r.lookup_of is not None
                for state, r in zip(states, records, strict=True)
            ),
            "running": states.count(TrialState.RUNNING),
            # proposed by the screened sampler without the screen, the front having stalled
            "unscreened": sum(bool(r.unscreened) for r in records),
        },
        "reference": reference,
        "latency_profile": study.user_attrs.get(PROFILE_ATTR),
        "front": [
            {
                "trial": t.number,
                "keep": r.keep,
                **{o: objective_value(o, v) for o, v in zip(objectives, t.values, strict=True)},
                "latency_measured_ms": ms,
                "latency_off_profile": latency_off_profile(r.latency_ms, ms),
                "test": front_test.get(keep_key(r.keep)),
            }
            for t, r, ms in zip(front, front_records, measured, strict=True)
        ],
        "front_test_estimate": front_test_estimate(study, front),
        "metric_scales": {m: SCALES[m] for m in METRICS},
        "selection": study.user_attrs.get(SELECTION_ATTR),
        "baselines": study.user_attrs.get(BASELINES_ATTR, []),
        "priors": study.user_attrs.get(PRIORS_ATTR, {}),
        "holdout": study.user_attrs.get(HOLDOUT_ATTR, {}),
        "aggregate": settings.get("aggregate"),
        "datasets": list((reference or {}).get("realigned", {}).get("datasets", {})),
        "compute": compute_spent(study),
        "warm_start": warm_start_followed(study, settings.get("warm_start")),
        "screen_skipped": study.user_attrs.get(SCREEN_SKIPPED_ATTR),
        "went_on": study.user_attrs.get(WENT_ON_ATTR),
    }
    summary["per_dataset"] = per_dataset(summary)
    if reference and trained:
        curve = hypervolume_curve_of(study, objectives)
        summary["hypervolume"] = {
            "final": curve[-1],
            "curve": curve,
            "compute_s": compute_curve(study, trained),
            "reference_point": hv_reference(objectives).tolist(),
            "normalised_by": "the re-aligned full model",
        }
    summary["findings"] = findings(summary)
    return summary


def warm_start_followed(study: optuna.Study, names: str | None) -> dict | None:
    """The study's warm-start studies (None: it has none) and, where its trials followed several,
    on how many of them the screened sampler followed each one's prior (before the first trained
    trial it follows their mean, recorded on no trial). A study resumed with another
    `--warm-start` list counts the earlier studies too, by the name each trial recorded."""
    if not names:
        return None
    studies = names.split(",")
    followed = dict.fromkeys(studies, 0)
    for trial in study.get_trials(deepcopy=False):
        name = TrialRecord.of(trial).warm_prior
        if isinstance(name, int):  # recorded as its place in the list (2026-12-04 only)
            name = studies[name] if name < len(studies) else None
        if name is not None:
            followed[name] = followed.get(name, 0) + 1
    return {"studies": studies, "followed": followed if len(followed) > 1 else None}


def compute_curve(study: optuna.Study, trained: list) -> list[float]:
    """Seconds of compute the study had spent when each trained trial finished, in trial order:
    the once-per-study steps before the trials (latency profile, full model, screen) and every
    trial up to that one, stopped at a rung and failed ones included (the x of the hypervolume
    curve: compute, not trials). With several workers, trials are counted in the order they
    started."""
    spent = study.user_attrs.get(COMPUTE_ATTR, {})
    total = sum(spent.get(step, 0.0) for step in STEPS_BEFORE_TRIALS)
    numbers = {t.number for t in trained}
    curve = []
    for trial in study.get_trials(deepcopy=False):
        total += TrialRecord.of(trial).wall_s or 0.0
        if trial.number in numbers:
            curve.append(round(total, 3))
    return curve


def per_dataset(summary: dict) -> list[dict]:
    """A multi-dataset study's selection next to the full model on each dataset, in that
    dataset's own metrics (the objectives aggregate ratios to the re-aligned full model)."""
    selection, reference = summary.get("selection"), summary.get("reference") or {}
    if not summary["datasets"] or not selection:
        return []
    metric = summary["objectives"][0]
    rows = []
    for name in summary["datasets"]:
        test = {
            "selected": selection["test"]["datasets"][name][metric],
            "full_realigned": reference["realigned"]["test"]["datasets"][name][metric],
            "full_zero_shot": reference["zero_shot"]["test"]["datasets"][name][metric],
        }
        rows.append(
            {
                "dataset": name,
                "metric": metric,
                "val_selected": selection["val"]["datasets"][name][metric],
                "val_full_realigned": reference["realigned"]["datasets"][name][metric],
                **{f"test_{k}": v for k, v in test.items()},
                "test_vs_zero_shot": test["selected"] / test["full_zero_shot"] - 1,
            }
        )
    return rows


def front_test_estimate(study: optuna.Study, front: list[optuna.trial.FrozenTrial]) -> dict:
    """What `report --test-front` would cost: the front points still without test metrics, and
    seconds estimated from what the study measured - each point's trial time (re-alignment and
    validation) plus a pass over the test windows, timed on the full model's test evaluation and
    scaled by the latency profile to the point's depth."""
    stored = study.user_attrs.get(FRONT_TEST_ATTR, {})
    missing = [TrialRecord.of(t) for t in front]
    missing = [
        (t, r) for t, r in zip(front, missing, strict=True) if keep_key(r.keep) not in stored
    ]
    test = ((study.user_attrs.get(REFERENCE_ATTR) or {}).get("realigned") or {}).get("test")
    profile = study.user_attrs.get(PROFILE_ATTR)
    if not missing or not test:
        return {"missing": [t.number for t, _ in missing], "windows": None, "seconds": None}
    full = study.user_attrs[REFERENCE_ATTR]["realigned"]["keep"]

    def depth_share(keep: list[int]) -> float:
        return predict_latency(profile, keep) / predict_latency(profile, full) if profile else 1

    seconds = sum((r.wall_s or 0) + test["seconds"] * depth_share(r.keep) for _, r in missing)
    numbers = [t.number for t, _ in missing]
    return {"missing": numbers, "windows": test["windows"], "seconds": seconds}


def earlier_selection(summary: dict, held: dict) -> bool:
    """Whether a held-out dataset's stored numbers are of another keep set than the current
    selection (selected again since, e.g. by `autoprune report --rule`)."""
    selection = summary.get("selection")
    return bool(selection) and held["keep"] != selection["keep"]


def _versus(metric: str, chosen: float, zero_shot: float, realigned: float) -> str:
    """A model's test accuracy next to the full model's, zero-shot and re-aligned."""
    return (
        f"test {metric} {chosen:.4g} against {zero_shot:.4g} for the full model zero-shot "
        f"({chosen / zero_shot - 1:+.1%}) and {realigned:.4g} re-aligned "
        f"({chosen / realigned - 1:+.1%})"
    )


def findings(summary: dict) -> list[str]:
    """Plain sentences on what the numbers mean, worst news first (e.g. a selection worse on
    test than the full model zero-shot, latencies measured under a different load)."""
    said = []
    selection, reference = summary.get("selection"), summary.get("reference") or {}
    metric = summary["objectives"][0]
    zero_shot = reference.get("zero_shot", {}).get("test", {}).get(metric)
    realigned = reference.get("realigned", {}).get("test", {}).get(metric)
    if selection and zero_shot is not None:
        chosen = selection["test"][metric]
        versus = _versus(metric, chosen, zero_shot, realigned)
        if chosen > zero_shot:
            said.append(
                f"WORSE THAN THE FULL MODEL: the selection ({selection['rule']}) is worse on "
                f"test than the full model zero-shot, which needs no pruning or re-alignment: "
                f"{versus}."
            )
        else:
            said.append(
                f"The selection ({selection['rule']}) is at least as good on test as the full "
                f"model zero-shot: {versus}."
            )
    worse = [r for r in summary.get("per_dataset", []) if r["test_vs_zero_shot"] > 0]
    if worse:
        said.append(
            f"On {len(worse)} of {len(summary['per_dataset'])} datasets the selection is worse on "
            "test than the full model zero-shot: "
            + "; ".join(
                f"{r['dataset']} {r['test_selected']:.4g} against {r['test_full_zero_shot']:.4g} "
                f"({r['test_vs_zero_shot']:+.1%})"
                for r in worse
            )
            + "."
        )
    for name, held in (summary.get("holdout") or {}).items():
        if earlier_selection(summary, held):
            said.append(
                f"ON HELD-OUT {name} THE NUMBERS ARE OF AN EARLIER SELECTION (keep set "
                f"{held['keep']}, not {selection['keep']}); resume the search with "
                f"--holdout-dataset {name} to measure the current one."
            )
            continue
        chosen, zero = held["selection"][metric], held["full_zero_shot"][metric]
        versus = _versus(metric, chosen, zero, held["full_realigned"][metric])
        if chosen > zero:
            said.append(
                f"ON HELD-OUT {name} THE SELECTION IS WORSE than the full model zero-shot: "
                f"{versus}; pruning and re-alignment on {summary['dataset']} cost accuracy "
                "elsewhere."
            )
        else:
            said.append(
                f"On held-out {name} the selection is at least as good as the full model "
                f"zero-shot: {versus}."
            )
    if selection and selection.get("rule_met") is False:
        full = reference["realigned"][metric]
        said.append(
            f"No front point is within the rule {selection['rule']}: the selection is the most "
            f"accurate front point, validation {metric} {selection['values'][metric]:.4g} "
            f"against {full:.4g} for the full model re-aligned "
            f"({selection['values'][metric] / full - 1:+.1%}); more trials may find one."
        )
    if selection and selection.get("latency_off_profile"):
        said.append(
            f"The selection's measured latency ({selection['latency_measured_ms']:.1f} ms) is "
            f"more than {LATENCY_TOLERANCE:g}x off the profile's prediction "
            f"({selection['latency_ms']:.1f} ms): the machine's load changed; compare latencies "
            "by the profile (latency_ms)."
        )
    off = [f["trial"] for f in summary["front"] if f["latency_off_profile"]]
    if off:
        said.append(
            f"{len(off)} of {len(summary['front'])} front points measured a latency more than "
            f"{LATENCY_TOLERANCE:g}x off the profile (trials {', '.join(map(str, off))}); "
            "their measured latency reflects the machine's load, not the model."
        )
    if went_on := summary.get("went_on"):
        reached = min(went_on["to"], summary["trials"]["trained"])  # an exhausted space stops it
        said.append(
            f"The search went on from {went_on['from']} to {reached} trained trials: its "
            "front was still growing (without --trials a search goes on until it is not, to at "
            f"most {went_on['most']})."
        )
    hv = summary.get("hypervolume")
    if hv and len(hv["curve"]) >= GROWING_MIN_TRIALS and still_growing(hv["curve"]):
        first, spent = first_held(hv["curve"]), hv["compute_s"]
        said.append(
            f"The front was still growing: it first held {HELD:.0%} of its hypervolume after "
            f"{first + 1} of its {len(hv['curve'])} trained trials ({spent[first]:.0f} of "
            f"{spent[-1]:.0f} s of compute), so more trials may well move it: resume with "
            f"`autoprune search --study {summary['study']} --trials N` (N trials in all)."
        )
    skipped = summary.get("screen_skipped")
    if skipped and skipped["reason"] == "budget":
        share = skipped.get("share")  # not stored by studies of before 2026-12-05
        said.append(skipped_sentence(skipped.get("projected_s"), skipped["allowed_s"], share))
    unscreened = summary["trials"]["unscreened"]
    if unscreened:
        said.append(
            f"{counted(unscreened, 'proposal')} came after the front had stalled ({STALL} "
            "trained trials in a row added no hypervolume): the screened sampler then proposes "
            f"without the screen until a trial adds some, or {SCREEN_BACK} in a row have added "
            "none."
        )
    warm = summary.get("warm_start")
    if warm:
        said.append(warm_start_finding(warm))
    estimate = summary["front_test_estimate"]
    if estimate["missing"] and estimate["seconds"] is not None:
        said.append(
            f"Test metrics of {len(estimate['missing'])} of {len(summary['front'])} front "
            f"points are not computed: `autoprune report {summary['study']} --test-front` "
            f"(about {estimate['seconds']:.0f} s: each is re-aligned and forecasts "
            f"{estimate['windows']:,} test windows)."
        )
    return said


def warm_start_finding(warm: dict) -> str:
    """What the warm start was and, with several studies, whose prior the sampler followed."""
    studies = warm["studies"]
    said = (
        f"Warm-started from {', '.join(studies)}: their trained keep sets were prior knowledge of "
        "which keep sets re-align well, never results of this study."
    )
    followed = {name: n for name, n in (warm["followed"] or {}).items() if n}
    if followed:
        ranked = sorted(followed.items(), key=lambda item: -item[1])
        said += (
            f" Of the sampler's {sum(followed.values())} proposals since the first trained trial, "
            + " and ".join(f"{n} followed the prior of {name}" for name, n in ranked)
            + " (the study whose prior best predicts this one's trials leads)."
        )
    return said


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _pareto_png(summary: dict, trials: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = summary["objectives"]
    accuracy = objectives[0]
    costs = [o for o in objectives[1:]] or ["params"]
    fig, axes = plt.subplots(1, len(costs), figsize=(6.2 * len(costs), 4.6), squeeze=False)
    done = [r for r in trials if r["state"] == "COMPLETE" and r["lookup_of"] is None]
    selection = summary.get("selection")
    reference = summary.get("reference") or {}
    for ax, cost in zip(axes[0], costs, strict=True):
        ax.scatter(
            [r[cost] for r in done],
            [r[accuracy] for r in done],
            s=18,
            c="#b8bec6",
            label="trials",
            zorder=2,
        )
        front = sorted(summary["front"], key=lambda f: f[cost])
        ax.plot(
            [f[cost] for f in front],
            [f[accuracy] for f in front],
            "-o",
            c="#1f77b4",
            ms=5,
            lw=1.2,
            label="front",
            zorder=3,
        )
        for name, marker, color in (("realigned", "D", "#2ca02c"), ("zero_shot", "s", "#9467bd")):
            if name in reference:
                ax.scatter(
                    [reference[name][cost]],
                    [reference[name][accuracy]],
                    marker=marker,
                    s=60,
                    c=color,
                    zorder=4,
                    label=f"full model ({name.replace('_', '-')})",
                )
        if selection:
            ax.scatter(
                [selection["values"][cost]],
                [selection["values"][accuracy]],
                marker="*",
                s=260,
                c="#d62728",
                edgecolors="black",
                zorder=5,
                label=f"selected ({selection['rule']})",
            )
        if cost == "params":
            ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1e6:.2g}M")
        ax.set_xlabel(LABELS.get(cost, cost))
        ax.set_ylabel(LABELS.get(accuracy, accuracy))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{summary['study']}: {summary['model']} on {summary['dataset']} "
        f"({counted(summary['trials']['trained'], 'trial')})"
    )
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=110)


def _figures(summary: dict, trials: list[dict]) -> list[tuple[str, str]]:
    """(title, html div) for each interactive figure; plotly.js is inlined once, in the first."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objectives = summary["objectives"]
    accuracy, costs = objectives[0], objectives[1:] or ["params"]
    done = [r for r in trials if r["state"] == "COMPLETE" and r["lookup_of"] is None]
    selection = summary.get("selection")
    reference = summary.get("reference") or {}
    figures = []

    scatter = make_subplots(
        rows=1,
        cols=len(costs),
        subplot_titles=[f"{LABELS[accuracy]} vs {LABELS[c]}" for c in costs],
    )
    for col, cost in enumerate(costs, start=1):
        first = col == 1
        scatter.add_trace(
            go.Scatter(
                x=[r[cost] for r in done],
                y=[r[accuracy] for r in done],
                mode="markers",
                marker=dict(color="#b8bec6", size=7),
                name="trials",
                showlegend=first,
                text=[f"trial {r['trial']}<br>keep {r['keep']}" for r in done],
                hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        front = sorted(summary["front"], key=lambda f: f[cost])
        scatter.add_trace(
            go.Scatter(
                x=[f[cost] for f in front],
                y=[f[accuracy] for f in front],
                mode="lines+markers",
                marker=dict(color="#1f77b4", size=9),
                name="front",
                showlegend=first,
                text=[f"trial {f['trial']}<br>keep {f['keep']}" for f in front],
                hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        for name, symbol, color in (
            ("realigned", "diamond", "#2ca02c"),
            ("zero_shot", "square", "#9467bd"),
        ):
            if name in reference:
                scatter.add_trace(
                    go.Scatter(
                        x=[reference[name][cost]],
                        y=[reference[name][accuracy]],
                        mode="markers",
                        marker=dict(symbol=symbol, size=13, color=color),
                        name=f"full model ({name.replace('_', '-')})",
                        showlegend=first,
                    ),
                    row=1,
                    col=col,
                )
        baselines = [b for b in summary["baselines"] if b["values"]]
        for kind in sorted({b["baseline"] for b in baselines}):
            rows = [b for b in baselines if b["baseline"] == kind]
            index = objectives.index
            scatter.add_trace(
                go.Scatter(
                    x=[b["values"][index(cost)] for b in rows],
                    y=[b["values"][index(accuracy)] for b in rows],
                    mode="markers",
                    marker=dict(
                        symbol=BASELINE_SYMBOLS.get(kind, "x"), size=10, line=dict(width=1)
                    ),
                    name=f"one-shot: {kind}",
                    legendgroup=kind,
                    showlegend=first,
                    text=[f"{kind}, keep {b['keep']}" for b in rows],
                    hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        if selection:
            scatter.add_trace(
                go.Scatter(
                    x=[selection["values"][cost]],
                    y=[selection["values"][accuracy]],
                    mode="markers",
                    marker=dict(
                        symbol="star", size=20, color="#d62728", line=dict(color="black", width=1)
                    ),
                    name=f"selected ({selection['rule']})",
                    showlegend=first,
                ),
                row=1,
                col=col,
            )
        scatter.update_xaxes(title_text=LABELS[cost], row=1, col=col)
        scatter.update_yaxes(title_text=LABELS[accuracy], row=1, col=col)
    scatter.update_layout(height=460, template="plotly_white", legend=dict(orientation="h", y=-0.2))
    figures.append(("Accuracy against cost", scatter))

    priors = summary["priors"]
    if priors:
        bars = go.Figure()
        for method, scores in priors.items():
            values = np.asarray(scores, dtype=float)
            span = values.max() - values.min()
            bars.add_trace(
                go.Bar(
                    x=[f"L{i}" for i in range(len(values))],
                    y=(values - values.min()) / span if span > 0 else values * 0,
                    name=method,
                    customdata=values,
                    hovertemplate=f"{method} %{{x}}: %{{customdata:.4g}}<extra></extra>",
                )
            )
        bars.update_layout(
            height=340,
            template="plotly_white",
            barmode="group",
            yaxis_title="importance (min-max scaled per method)",
        )
        figures.append(("Layer importance by method (priors)", bars))

    front = summary["front"]
    if front:
        layers = summary["reference"]["realigned"]["keep"] if reference else []
        z = [[1 if layer in f["keep"] else 0 for layer in layers] for f in front]
        heat = go.Figure(
            go.Heatmap(
                z=z,
                x=[f"L{layer}" for layer in layers],
                y=[f"#{f['trial']} ({len(f['keep'])} kept, {f[accuracy]:.3f})" for f in front],
                colorscale=[[0, "#f2f2f2"], [1, "#1f77b4"]],
                showscale=False,
                xgap=2,
                ygap=2,
                hovertemplate="%{y}<br>%{x}: %{z}<extra></extra>",
            )
        )
        heat.update_layout(
            height=160 + 34 * len(front),
            template="plotly_white",
            xaxis_title="layer (blue = kept)",
            yaxis=dict(autorange="reversed"),
        )
        figures.append(("Kept layers on the front", heat))

    hv = summary.get("hypervolume")
    if hv:
        curve = go.Figure(
            go.Scatter(
                x=hv["compute_s"],
                y=hv["curve"],
                customdata=list(range(1, len(hv["curve"]) + 1)),
                mode="lines+markers",
                hovertemplate="%{x:.0f} s, %{customdata} trained trials: %{y:.4f}<extra></extra>",
            )
        )
        curve.update_layout(
            height=320,
            template="plotly_white",
            xaxis_title="compute seconds (steps before the trials, then every trial)",
            xaxis=dict(rangemode="tozero"),  # from 0: the fixed cost before trial 1 shows
            yaxis_title="hypervolume (normalised)",
        )
        figures.append(("Hypervolume over compute", curve))

    steps = summary["compute"]["steps"]
    if steps:
        spent = go.Figure(
            go.Bar(
                x=[r["seconds"] for r in steps],
                y=[compute_label(r) for r in steps],
                orientation="h",
                text=[f"{r['seconds']:.0f} s" for r in steps],
                marker_color="#1f77b4",
            )
        )
        spent.update_layout(
            height=120 + 30 * len(steps),
            template="plotly_white",
            xaxis_title="seconds, all runs of the study",
            yaxis=dict(autorange="reversed"),
        )
        figures.append(("Where the compute went", spent))

    # the front's keep sets, timed at the end of the search (a study from before that timed
    # every trial: those too)
    measured = {
        r["trial"]: (r["latency_ms"], r["latency_measured_ms"])
        for r in [*done, *summary["front"]]
        if r.get("latency_ms") is not None and r.get("latency_measured_ms") is not None
    }
    if measured:
        lat = go.Figure(
            go.Scatter(
                x=[m[0] for m in measured.values()],
                y=[m[1] for m in measured.values()],
                text=[f"trial {t}" for t in measured],
                mode="markers",
                name="keep sets",
            )
        )
        low = min(min(m) for m in measured.values())
        high = max(max(m) for m in measured.values())
        lat.add_trace(
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                name="y = x",
                line=dict(dash="dot", color="grey"),
            )
        )
        lat.update_layout(
            height=340,
            template="plotly_white",
            xaxis_title="predicted by the latency profile (ms)",
            yaxis_title="measured (ms)",
        )
        figures.append(("Latency: profile prediction against measurement", lat))

    divs = []
    for i, (title, fig) in enumerate(figures):
        divs.append(
            (
                title,
                fig.to_html(
                    full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}
                ),
            )
        )
    return divs


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return escape(str(value)) if value is not None else ""


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scales_html() -> str:
    items = "".join(f"<li><b>{m}</b>: {escape(SCALES[m])}</li>" for m in METRICS)
    return f"<p>Metrics (lower is better):</p><ul class='scales'>{items}</ul>"


def front_columns(summary: dict) -> list[str]:
    objectives = summary["objectives"]
    return [
        "trial",
        "keep",
        *objectives,
        *(f"test_{m}" for m in METRICS),
        "latency_measured_ms",
        "latency_off_profile",
    ]


COMPUTE_COLUMNS = ["step", "count", "seconds", "share"]
COMPUTE_NOTE = (
    "Seconds this study has spent in all its runs, by step (summed over workers; start-up, "
    "loading the model and data, is not counted)"
)


def counted(n: int, noun: str) -> str:
    """`n` of a noun as a user reads it: "1 trial", "30 trials"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def compute_label(row: dict) -> str:
    """A compute step as a user reads it: "30 trials trained to the full budget", "1 trial
    stopped at a rung", "screen"."""
    if row["count"] is None:
        return row["step"]
    noun, rest = row["step"].split(" ", 1)  # study.TRIAL_KINDS: "trials <what>"
    return f"{counted(row['count'], noun.removesuffix('s'))} {rest}"


def compute_line(compute: dict) -> str:
    """Where the study's compute went, in the one line `autoprune search` ends with."""
    parts = "; ".join(f"{compute_label(row)} {row['seconds']:.0f} s" for row in compute["steps"])
    return f"compute, all runs of this study: {compute['total_s']:.0f} s ({parts})"


def compute_rows(summary: dict) -> list[dict]:
    """The compute table: each step's seconds and share of the total."""
    total = summary["compute"]["total_s"] or 1.0
    return [
        {**row, "seconds": round(row["seconds"], 1), "share": f"{row['seconds'] / total:.0%}"}
        for row in summary["compute"]["steps"]
    ]


def front_rows(summary: dict) -> list[dict]:
    """The front as table rows: validation objectives, then test metrics where computed."""
    return [
        {
            **{k: v for k, v in f.items() if k != "test"},
            "keep": " ".join(map(str, f["keep"])),
            **{f"test_{m}": (f["test"] or {}).get(m) for m in METRICS},
        }
        for f in summary["front"]
    ]


def _markdown(summary: dict) -> str:
    """report.md: what a terminal or a pull request shows, the findings first."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
            return f"{value:,}"
        return "" if value is None else str(value)

    def table(rows: list[dict], columns: list[str]) -> list[str]:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return lines + ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]

    setting, reference = summary["setting"], summary.get("reference") or {}
    lines = [
        f"# autoprune study `{summary['study']}`",
        "",
        f"{summary['model']} on {summary['dataset']}; context {setting['context_length']}, "
        f"horizon {setting['horizon']}, patch {setting['patch_size']}; re-alignment "
        f"{summary['realign']['steps']} steps at lr {summary['realign']['lr']}"
        f"{distilled(summary['realign'])}; "
        f"{counted(summary['trials']['trained'], 'trial')} trained.",
        "",
    ]
    if summary["aggregate"]:
        lines += [
            f"Accuracy metrics are the {summary['aggregate']} over {len(summary['datasets'])} "
            "datasets of each one's ratio to the re-aligned full model (1 = as good as it); "
            "each dataset's own under Per dataset.",
            "",
        ]
    if summary["findings"]:
        lines += ["## Findings", "", *(f"- {line}" for line in summary["findings"]), ""]
    selection = summary.get("selection")
    if selection:
        rows = [
            {"model": "selected", "split": split, **selection[split]} for split in ("val", "test")
        ]
        for kind in ("realigned", "zero_shot"):
            full = reference.get(kind, {})
            rows += [
                {"model": f"full model {kind.replace('_', '-')}", "split": "val", **full},
                {"model": f"full model {kind.replace('_', '-')}", "split": "test",
                 **full.get("test", {})},
            ]  # fmt: skip
        lines += [
            "## Selected configuration",
            "",
            f"Rule `{selection['rule']}` picked trial {selection['trial']}, keeping layers "
            f"{selection['keep']} ({len(selection['keep'])} of "
            f"{len(reference.get('realigned', {}).get('keep', []))}).",
            "",
            *table(rows, ["model", "split", *METRICS]),
            "",
        ]
    if summary.get("per_dataset"):
        lines += [
            "## Per dataset",
            "",
            f"The objectives aggregate each dataset's ratio to the re-aligned full model "
            f"({summary['aggregate']}; 1 = as good as it); here each dataset's own "
            f"{summary['objectives'][0]}.",
            "",
            *table(summary["per_dataset"], list(summary["per_dataset"][0])),
            "",
        ]
    if summary.get("holdout"):
        rows = [
            {
                "dataset": name,
                "model": f"earlier selection {held['keep']}"
                if label == "selection" and earlier_selection(summary, held)
                else label.replace("_", " "),
                **held[label],
            }
            for name, held in summary["holdout"].items()
            for label in ("selection", "full_zero_shot", "full_realigned")
        ]
        lines += [
            "## Held-out datasets (test split, zero-shot)",
            "",
            f"Never used for re-alignment or selection; re-aligned models saw only "
            f"{summary['dataset']}.",
            "",
            *table(rows, ["dataset", "model", *METRICS, "windows"]),
            "",
        ]
    lines += ["## Front", "", *table(front_rows(summary), front_columns(summary)), ""]
    if summary["compute"]["steps"]:
        lines += [
            "## Compute",
            "",
            f"{COMPUTE_NOTE}: {summary['compute']['total_s']:.0f} s.",
            "",
            *table(compute_rows(summary), COMPUTE_COLUMNS),
            "",
        ]
        if summary.get("hypervolume"):
            lines += [hypervolume_reached(summary["hypervolume"]), ""]
    lines += ["## Metrics (lower is better)", ""]
    lines += [f"- `{m}`: {summary['metric_scales'][m]}" for m in METRICS]
    return "\n".join(lines) + "\n"


HELD = 0.95  # a front "held" its hypervolume once it had this share of the final one
GROWING_MIN_TRIALS = 10  # fewer trained trials say too little about whether the front settled
GROWING_LAST = 0.2  # still growing: first held in the last fifth of the trained trials


def first_held(curve: list[float]) -> int:
    """The trained trial (index) after which the front first held HELD of its final volume."""
    return next(i for i, value in enumerate(curve) if value >= HELD * curve[-1])


def settled_at(curve: list[float]) -> int:
    """The fewest trained trials at which the front, gaining nothing more, is no longer still
    growing: its first holding HELD of its volume falls before the last fifth of them."""
    if not curve or curve[-1] <= 0:
        return len(curve)
    first, trials = first_held(curve), len(curve)
    while first >= (1 - GROWING_LAST) * trials:
        trials += 1
    return trials


def still_growing(curve: list[float]) -> bool:
    return settled_at(curve) > len(curve)


def hypervolume_reached(hv: dict) -> str:
    """How far along the front is: when the search first held 95% of its hypervolume now. Long
    before the end, more trials of the same search are unlikely to move the front much."""
    curve, spent = hv["curve"], hv["compute_s"]
    if not curve[-1]:
        return (
            f"The front holds no hypervolume after {len(curve)} trained trials and "
            f"{spent[-1]:.0f} s of compute: every keep set is at or beyond the reference point."
        )
    first = first_held(curve)
    return (
        f"The front's hypervolume (objectives over the re-aligned full model's) is "
        f"{curve[-1]:.4f} after {counted(len(curve), 'trained trial')} and {spent[-1]:.0f} s of "
        f"compute; {HELD:.0%} of it was first held after {counted(first + 1, 'trial')} and "
        f"{spent[first]:.0f} s."
    )


def _html(summary: dict, trials: list[dict]) -> str:
    objectives = summary["objectives"]
    reference = summary.get("reference") or {}
    selection = summary.get("selection")
    parts = [
        f"<h1>autoprune study <code>{escape(summary['study'])}</code></h1>",
        f"<p>{escape(summary['model'])} on {escape(summary['dataset'])} &middot; "
        f"context {summary['setting']['context_length']}, horizon "
        f"{summary['setting']['horizon']}, patch {summary['setting']['patch_size']} &middot; "
        f"re-alignment {summary['realign']['steps']} steps at lr {summary['realign']['lr']}"
        f"{escape(distilled(summary['realign']))} "
        f"&middot; {counted(summary['trials']['trained'], 'trial')} trained, "
        f"{summary['trials']['failed']} failed, {summary['trials']['lookups']} look-ups "
        f"&middot; sampler {escape(str(summary.get('sampler')))}</p>",
    ]
    if summary["findings"]:
        items = "".join(f"<li>{escape(line)}</li>" for line in summary["findings"])
        parts.append(f"<div class='card' id='findings'><h2>Findings</h2><ul>{items}</ul></div>")
    if selection:
        full_val = reference.get("realigned", {})
        values = ", ".join(
            f"{o} {_fmt(selection['values'][o])}"
            + (
                f" ({selection['values'][o] / full_val[o]:.0%} of the full model)"
                if o in full_val
                else ""
            )
            for o in objectives
        )
        rows = []
        for label, metrics in (
            ("selected (test)", selection["test"]),
            ("full model re-aligned (test)", reference.get("realigned", {}).get("test", {})),
            ("full model zero-shot (test)", reference.get("zero_shot", {}).get("test", {})),
        ):
            rows.append({"model": label, **{m: metrics.get(m) for m in METRICS}})
        parts.append(
            f"<div class='card' id='selection'><h2>Selected configuration</h2>"
            f"<p>Rule <b>{escape(selection['rule'])}</b> picked trial "
            f"<b>{selection['trial']}</b>, keeping layers <b>{selection['keep']}</b> "
            f"({len(selection['keep'])} of {len(reference.get('realigned', {}).get('keep', []))})"
            f": {values}.</p>" + _table(rows, ["model", *METRICS]) + _scales_html() + "</div>"
        )
    else:
        parts.append(
            "<div class='card' id='selection'><h2>Selected configuration</h2>"
            "<p>None yet: the search has not finished a trial.</p></div>"
        )
    if summary.get("per_dataset"):
        parts.append(
            "<div class='card' id='datasets'><h2>Per dataset</h2><p>The objectives aggregate "
            f"each dataset's ratio to the re-aligned full model ({escape(summary['aggregate'])}"
            "; 1 = as good as it); here each dataset's own metric.</p>"
            + _table(summary["per_dataset"], list(summary["per_dataset"][0]))
            + "</div>"
        )
    for title, div in _figures(summary, trials):
        parts.append(f"<h2>{escape(title)}</h2>{div}")
    parts.append(
        "<h2>Front</h2><p>Test metrics are never used to select; a blank test cell is a point "
        "not re-trained yet (<code>--test-front</code>).</p>"
        + _table(front_rows(summary), front_columns(summary))
    )
    if summary["compute"]["steps"]:
        parts.append(
            f"<h2>Compute</h2><p>{escape(COMPUTE_NOTE)}: "
            f"{summary['compute']['total_s']:.0f} s.</p>"
            + _table(compute_rows(summary), COMPUTE_COLUMNS)
        )
    if reference:
        ref_rows = [
            {"model": f"full, {k.replace('_', '-')}", **{o: v.get(o) for o in objectives}}
            for k, v in reference.items()
        ]
        parts.append(
            "<h2>Full-model reference (validation)</h2>" + _table(ref_rows, ["model", *objectives])
        )
    timed = any(t.get("latency_measured_ms") is not None for t in trials)
    parts.append(
        "<h2>All trials</h2>"
        + _table(
            trials,
            [
                "trial",
                "state",
                "keep",
                *objectives,
                # a search times its front at the end, not every trial (a study from before did)
                *(["latency_measured_ms", "latency_off_profile"] if timed else []),
                "wall_s",
                "lookup_of",
                "baseline",
                "fail_reason",
            ],
        )
    )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;font-size:13px;margin:1em 0}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
        ".card{background:#f7fafc;border:1px solid #d0dbe6;border-radius:6px;padding:0 1em}"
        "code{background:#eee;padding:0 4px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>autoprune "
        f"{escape(summary['study'])}</title><style>{style}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )


def write_report(study: optuna.Study, out: Path) -> dict[str, Path]:
    """Write every report file into `out` (each written atomically): summary.json, trials.csv,
    front.csv, pareto.png, report.md, a self-contained report.html (plotly inlined, works
    offline) and, for several datasets, datasets.png; returns their paths."""
    out = Path(out)
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    summary = collect(study)
    objectives = summary["objectives"]
    trials = [
        _trial_row(t, objectives, summary["datasets"]) for t in study.get_trials(deepcopy=False)
    ]
    names = ("summary.json", "trials.csv", "front.csv", "pareto.png", "report.md", "report.html")
    paths = {name: out / name for name in names}
    atomic_write_text(paths["summary.json"], json.dumps(summary, indent=2) + "\n")
    atomic_write_text(paths["trials.csv"], _csv(trials))
    columns = front_columns(summary)
    atomic_write_text(
        paths["front.csv"], _csv([{c: r[c] for c in columns} for r in front_rows(summary)])
    )
    atomic_write_text(paths["report.md"], _markdown(summary))
    _pareto_png(summary, trials, paths["pareto.png"])
    atomic_write_text(paths["report.html"], _html(summary, trials))
    if summary["per_dataset"]:
        paths["datasets.png"] = out / "datasets.png"
        _datasets_png(summary, paths["datasets.png"])
    return paths


def _datasets_png(summary: dict, path: Path) -> None:
    """Test accuracy on each dataset: the selection and the full model re-aligned, relative to
    the full model zero-shot (1, the dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["per_dataset"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(rows) + 2), 4.2))
    for offset, key, label in (
        (-0.2, "test_selected", "selection"),
        (0.2, "test_full_realigned", "full model re-aligned"),
    ):
        ratios = [r[key] / r["test_full_zero_shot"] for r in rows]
        ax.bar(x + offset, ratios, width=0.4, label=label)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="full model zero-shot")
    ax.set_xticks(x, [r["dataset"] for r in rows])
    ax.set_ylabel(f"test {rows[0]['metric']} / full model zero-shot (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=120)
