"""Benchmarks that print figures (never timed unit tests): machines are noisy, so each one
measures what it compares within a single run.

`overhead`: runs a fresh study and splits every trial's wall time into prune / re-align /
evaluate / latency measurement / engine overhead (everything else: Optuna sampling and storage
writes, look-up checks, heartbeats, bookkeeping), and records resident memory after each trial.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import optuna

from autoprune.backends import local
from autoprune.export import atomic_write_text
from autoprune.search import SearchOptions, ensure_reference, importance_order, prepare

PARTS = ("prune_s", "realign_s", "evaluate_s", "latency_s")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def overhead(
    trials: int, model: str, dataset: str, threads: int | None, out: Path, log=print
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(
            SearchOptions(
                study="bench-overhead",
                model=model,
                dataset=dataset,
                trials=trials,
                seed=0,
                threads=threads,
                storage=f"sqlite:///{tmp}/bench.db",
            )
        )
        ensure_reference(prep, log)
        memory = [rss_mb()]
        cycles: list[tuple[optuna.trial.FrozenTrial | None, float]] = []
        last = [time.perf_counter()]

        def on_trial(study, trial) -> None:
            now = time.perf_counter()
            cycles.append((trial, now - last[0]))
            last[0] = now
            memory.append(rss_mb())
            if len(cycles) % 10 == 0:
                log(f"{len(cycles)} trials, rss {memory[-1]:.0f} MB")

        local.run(prep.study, prep.ctx, trials, importance_order(prep.ctx), on_trial)
    rows = []
    for trial, cycle in cycles:
        trained = trial is not None and "timing" in trial.user_attrs
        parts = {p: trial.user_attrs["timing"][p] if trained else 0.0 for p in PARTS}
        rows.append(
            {
                "trial": trial.number if trial else None,
                "kind": "trained" if trained else "look-up or other",
                "kept": len(trial.user_attrs.get("keep", [])) if trial else None,
                "cycle_s": cycle,
                **parts,
                "engine_s": cycle - sum(parts.values()),
            }
        )
    totals = {k: float(sum(r[k] for r in rows)) for k in ("cycle_s", *PARTS, "engine_s")}
    trained_rows = [r for r in rows if r["kind"] == "trained"]
    result = {
        "benchmark": "overhead",
        "model": model,
        "dataset": dataset,
        "threads": threads,
        "device": str(prep.ctx.device),
        "trials": len(trained_rows),
        "look_ups": len(rows) - len(trained_rows),
        "share_of_trial_time": {k: totals[k] / totals["cycle_s"] for k in (*PARTS, "engine_s")},
        "mean_s": {k: totals[k] / len(trained_rows) for k in totals},
        "engine_overhead_pct": 100 * totals["engine_s"] / totals["cycle_s"],
        "rss_mb": {
            "after_reference": memory[0],
            "after_first_trial": memory[1],
            "after_last_trial": memory[-1],
            "max": max(memory),
            "growth_last_minus_first_trial": memory[-1] - memory[1],
            "per_trial": [round(m, 1) for m in memory],
        },
        "per_trial": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result
