"""Replay search strategies against a ground-truth table: a trial is a look-up, so dozens of
seeds of every strategy run in minutes and are compared on exactly the same numbers.

A strategy is a sampler plus, optionally, keep sets enqueued first (one-shot prior or screen
seeds). Each seed runs until `budget` distinct keep sets have been "trained"; a repeated keep set
costs nothing, as in a real study. Reported per strategy: hypervolume ratio to the true front
after 10/20/50/100/200 trials (median and IQR over seeds), trials to reach 95% and 100% of the
true hypervolume, and front recall; per prior, the share of the true front its one-shot keep
sets find alone.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from autoprune.backends.local import MAX_LOOKUPS_IN_A_ROW
from autoprune.errors import UnknownNameError
from autoprune.export import atomic_write_bytes, atomic_write_text
from autoprune.importance import top_k
from autoprune.multifidelity import Pool, ScreenedSampler
from autoprune.objective import suggest_keep
from autoprune.pareto import hv_reference, hypervolume, non_dominated
from autoprune.samplers import SAMPLERS
from autoprune.space import parse_space

CHECKPOINTS = (10, 20, 50, 100, 200)


@dataclass
class Table:
    """The ground truth of one model and dataset, normalised by the re-aligned full model."""

    meta: dict
    keeps: list[tuple[int, ...]]
    values: np.ndarray  # (n, objectives), normalised
    screen: np.ndarray  # zero-shot MASE of the mean forecast, normalised by the full model's
    reference: np.ndarray
    true_hv: float
    true_front: set[tuple[int, ...]]

    @classmethod
    def load(cls, meta: dict, rows: list[dict]) -> Table:
        rows = [r for r in rows if r["mase"] is not None]
        objectives = meta["objectives"]
        full = np.array([meta["reference"]["realigned"][o] for o in objectives])
        values = np.array([[r[o] for o in objectives] for r in rows]) / full
        reference = hv_reference(objectives)
        mask = non_dominated(values)
        screen_full = meta["screen_full"]["mase"]
        return cls(
            meta,
            [r["keep"] for r in rows],
            values,
            np.array([r["zs_mase"] for r in rows]) / screen_full,
            reference,
            hypervolume(values[mask], reference),
            {r["keep"] for r, m in zip(rows, mask, strict=True) if m},
        )

    @property
    def num_layers(self) -> int:
        return self.meta["space"]["num_layers"]

    def one_shot(self, scores: list[float]) -> list[tuple[int, ...]]:
        """The top-k layers by a prior, for every size in the table."""
        return [top_k(scores, k) for k in sorted({len(k) for k in self.keeps})]

    def top_screen(self) -> list[tuple[int, ...]]:
        """The best zero-shot keep set of every size."""
        best: dict[int, tuple[float, tuple[int, ...]]] = {}
        for keep, value in zip(self.keeps, self.screen, strict=True):
            if len(keep) not in best or value < best[len(keep)][0]:
                best[len(keep)] = (value, keep)
        return [best[k][1] for k in sorted(best)]


Strategy = Callable[[Table, int], tuple[optuna.samplers.BaseSampler, list[tuple[int, ...]]]]


def _optuna(name: str) -> Strategy:
    return lambda table, seed: (SAMPLERS[name][1](seed), [])


def _seeded(seeds: Callable[[Table], list], sampler: str = "tpe") -> Strategy:
    return lambda table, seed: (SAMPLERS[sampler][1](seed), seeds(table))


def _screened(table: Table, seed: int):
    pool = Pool.build(table.keeps, table.values[:, 1:], table.screen, table.num_layers)
    full = np.ones(table.values.shape[1])
    return ScreenedSampler(pool, full, table.reference, 0), []


def strategies(table: Table) -> dict[str, Strategy]:
    result = {name: _optuna(name) for name in ("random", "tpe-independent", "tpe", "nsga2", "gp")}
    for method, scores in table.meta["priors"].items():
        result[f"tpe+{method}"] = _seeded(lambda t, s=scores: t.one_shot(s))
    result["tpe+screen"] = _seeded(lambda t: t.top_screen())
    result["screened"] = _screened
    return result


def replay_one(
    table: Table, strategy: Strategy, seed: int, budget: int
) -> tuple[list[float], float]:
    """Hypervolume ratio after each distinct keep set one seed of a strategy trains, and the
    share of the true front it found."""
    sampler, seeds = strategy(table, seed)
    lookup = {k: v for k, v in zip(table.keeps, table.values, strict=True)}
    space = parse_space(
        {
            "model": "replay",
            "num_layers": table.num_layers,
            "min_kept": table.meta["space"]["min_kept"],
            "max_kept": table.meta["space"]["max_kept"],
            "always_keep": table.meta["space"]["always_keep"],
        },
        "<replay>",
    )
    order = list(range(table.num_layers))
    study = optuna.create_study(directions=["minimize"] * table.values.shape[1], sampler=sampler)
    for keep in seeds:
        study.enqueue_trial(space.params_of(keep))
    seen: dict[tuple[int, ...], np.ndarray] = {}
    curve: list[float] = []
    lookups = 0  # a study stops after this many look-ups in a row, as `search` does
    budget = min(budget, len(lookup))
    while len(seen) < budget and lookups < MAX_LOOKUPS_IN_A_ROW:
        trial = study.ask()
        keep = suggest_keep(trial, space, order)
        trial.set_user_attr("keep", list(keep))
        values = lookup[keep]
        lookups = lookups + 1 if keep in seen else 0
        if keep not in seen:
            seen[keep] = values
            points = np.array(list(seen.values()))
            curve.append(
                hypervolume(points[non_dominated(points)], table.reference) / table.true_hv
            )
        study.tell(trial, values.tolist())
    return curve, len(table.true_front & set(seen)) / len(table.true_front)


def _trials_to(curves: list[list[float]], level: float) -> dict:
    """Trials each seed needed to reach `level` of the true hypervolume; a seed that never did
    (budget spent, or stalled on look-ups) counts as infinitely many, so the median is None
    when half the seeds or more never got there."""
    hits = [next((i + 1 for i, v in enumerate(c) if v >= level - 1e-9), np.inf) for c in curves]
    with np.errstate(invalid="ignore"):  # inf - inf between two unreached seeds: None below
        median = float(np.median(hits))
        q1, q3 = np.percentile(hits, [25, 75])
    return {
        "median": median if np.isfinite(median) else None,
        "iqr": [float(q) if np.isfinite(q) else None for q in (q1, q3)],
        "reached": f"{int(np.isfinite(hits).sum())}/{len(hits)}",
    }


def summarise(table: Table, curves: list[list[float]], recalls: list[float], budget: int) -> dict:
    at = {}
    for n in CHECKPOINTS:
        values = [c[min(n, len(c)) - 1] for c in curves]
        at[str(n)] = {
            "median": float(np.median(values)),
            "iqr": [float(np.percentile(values, 25)), float(np.percentile(values, 75))],
        }
    return {
        "hv_ratio_at": at,
        "trials_to_95": _trials_to(curves, 0.95),
        "stalled": sum(len(c) < min(budget, len(table.keeps)) for c in curves),
        "trials_to_100": _trials_to(curves, 1.0),
        "front_recall_at_budget": float(np.median(recalls)),
    }


# Optuna's GP sampler refits its kernel every trial: minutes per seed at these budgets, on 2 cores
ON_REQUEST = ("gp",)
# strategies that take no seed (the screened sampler is deterministic for a table): replayed once
SEED_FREE = ("screened",)


def run(table: Table, seeds: int, budget: int, only: list[str] | None = None, log=print) -> dict:
    known = strategies(table)
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise UnknownNameError(f"unknown replay strategy {unknown[0]!r}; known: {', '.join(known)}")
    if not only:
        only = [name for name in known if name not in ON_REQUEST]
        log(f"replaying {', '.join(only)}; {', '.join(ON_REQUEST)} only with --strategy")
    results = {}
    for name, strategy in known.items():
        if name not in only:
            continue
        start = time.perf_counter()
        curves, recalls = [], []
        for seed in range(1 if name in SEED_FREE else seeds):
            curve, recall = replay_one(table, strategy, seed, budget)
            curves.append(curve)
            recalls.append(recall)
        results[name] = {
            **summarise(table, curves, recalls, budget),
            "seconds": round(time.perf_counter() - start, 1),
            "curves": [[round(v, 5) for v in c] for c in curves],
        }
        t95 = results[name]["trials_to_95"]["median"]
        log(
            f"{name:>18}: trials to 95% HV (median) {t95}, "
            f"HV@20 {results[name]['hv_ratio_at']['20']['median']:.3f} "
            f"({results[name]['seconds']:.0f} s)"
        )
    one_shot = {
        method: len(set(table.one_shot(s)) & table.true_front) / len(table.true_front)
        for method, s in table.meta["priors"].items()
    }
    one_shot["screen"] = len(set(table.top_screen()) & table.true_front) / len(table.true_front)
    return {
        "optuna": optuna.__version__,  # its samplers' behaviour changes between releases
        "true_front_size": len(table.true_front),
        "space_size": len(table.keeps),
        "true_front": sorted(list(k) for k in table.true_front),
        "seeds": seeds,
        "budget": budget,
        "one_shot_front_share": one_shot,
        "strategies": results,
    }


def write(result: dict, out: Path) -> Path:
    """The result as JSON, and beside it a PNG of the median hypervolume curves."""
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in result["strategies"].items():
        longest = max(len(c) for c in r["curves"])
        padded = np.array([c + [c[-1]] * (longest - len(c)) for c in r["curves"]])
        x = np.arange(1, longest + 1)
        style = "-" if name in ("screened", "tpe", "tpe-independent", "random", "nsga2") else ":"
        own = {"color": "black", "lw": 2.2} if name == "screened" else {"lw": 1.2}
        ax.plot(x, np.median(padded, axis=0), style, label=name, **own)
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("trained trials")
    ax.set_ylabel("hypervolume / true hypervolume (median over seeds)")
    ax.set_title(
        f"{result['truth']}: {result['seeds']} seeds, true front "
        f"{result['true_front_size']} of {result['space_size']} keep sets",
        fontsize=9,
    )
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    png = out.with_suffix(".png")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(png, buffer.getvalue())
    return png
