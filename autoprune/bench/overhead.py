"""Benchmarks that print figures (never timed unit tests) of the engine's costs: `overhead`,
`ray_scaling` and `startup`. Machines are noisy, so each one measures what it compares within
a single run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import optuna

from autoprune.backends import local
from autoprune.export import atomic_write_text
from autoprune.record import TrialRecord
from autoprune.report import counted
from autoprune.search.cached import ensure_reference
from autoprune.search.options import DEFAULT_TRIALS, SearchOptions, prepare
from autoprune.search.run import screen_allowance, study_sampler

# a single-fidelity trial of a study with a latency profile evaluates no rung and times no
# forward pass of its own (`TrialContext.rungs`, `run_trial`)
PARTS = ("prune_s", "realign_s", "evaluate_s")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def overhead(
    trials: int, model: str, dataset: str, threads: int | None, out: Path, log=print
) -> dict:
    """Run a fresh study and split every trial's wall time into prune / re-align / evaluate /
    engine overhead (everything else: Optuna sampling and storage writes, look-up checks,
    heartbeats, bookkeeping); record resident memory after each trial."""
    with tempfile.TemporaryDirectory() as tmp:
        prep = prepare(
            SearchOptions(
                study="bench-overhead",
                model=model,
                dataset=dataset,
                trials=trials,
                fidelity="single",  # every trial the same full pipeline
                sampler="random",
                seed=0,
                threads=threads,
                storage=f"sqlite:///{tmp}/bench.db",
            )
        )
        ensure_reference(prep, log)
        prep.study.sampler = study_sampler(prep, log)
        memory = [rss_mb()]
        cycles: list[tuple[optuna.trial.FrozenTrial | None, float]] = []
        last = [time.perf_counter()]

        def on_trial(study, trial) -> None:
            now = time.perf_counter()
            cycles.append((trial, now - last[0]))
            last[0] = now
            memory.append(rss_mb())
            if len(cycles) % 10 == 0:
                log(f"{counted(len(cycles), 'trial')}, rss {memory[-1]:.0f} MB")

        local.run(prep.study, prep.ctx, trials, on_trial)
    rows = []
    for trial, cycle in cycles:
        record = TrialRecord.of(trial) if trial else TrialRecord()
        trained = record.timing is not None
        parts = {p: record.timing.get(p, 0.0) if trained else 0.0 for p in PARTS}
        rows.append(
            {
                "trial": trial.number if trial else None,
                "kind": "trained" if trained else "look-up or other",
                "kept": len(record.keep_set) if trial else None,
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


def ray_scaling(
    trials: int, model: str, dataset: str, workers: tuple[int, ...], out: Path, log=print
) -> dict:
    """Trials per minute on this machine: the local backend, then Ray with each worker count.

    Every run is a fresh study with the same seed and the random sampler, so all of them train
    the same keep sets in the same order (the screened sampler would adapt to what finished
    first, which changes with the worker count). The full-model reference and the latency
    profile are skipped: only the screened sampler and the final selection need them, and each
    trial still measures its own latency. Ray's fixed cost is reported apart: the
    runtime's start-up, and how long the first trial took to come back beyond its own training
    (a fresh worker process imports torch and the model code and receives the trial context).
    """
    import os

    from autoprune.backends import ray as ray_backend
    from autoprune.study import trained_trials

    cpus = os.cpu_count() or 1
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (0, *workers):  # 0: the local backend
            label = f"ray-{count}" if count else "local"
            url = f"sqlite:///{tmp}/{label}.db"
            prep = prepare(
                SearchOptions(
                    study=f"bench-{label}",
                    model=model,
                    dataset=dataset,
                    trials=trials,
                    seed=0,
                    sampler="random",
                    fidelity="single",
                    threads=cpus,
                    storage=url,
                    backend="ray" if count else "local",
                    workers=count or None,
                )
            )
            prep.study.sampler = study_sampler(prep, log)
            finished: list[float] = []  # when each trained trial came back

            def on_trial(study, trial, finished=finished) -> None:
                if trial is not None and TrialRecord.of(trial).wall_s is not None:
                    finished.append(time.perf_counter())

            log(f"{label}: {counted(trials, 'trial')} ...")
            row = {"backend": label, "workers": count or 1, "load_before": os.getloadavg()[0]}
            if count:
                options = ray_backend.RayOptions(workers=count, device="cpu")
                start = time.perf_counter()
                with ray_backend.session(options):
                    row["ray_start_s"] = time.perf_counter() - start
                    start = time.perf_counter()
                    ray_backend.run(prep.study, prep.ctx, trials, url, options, on_trial)
                row["cpus_per_trial"] = max(1, cpus // count)
            else:
                start = time.perf_counter()
                local.run(prep.study, prep.ctx, trials, on_trial)
                row["cpus_per_trial"] = cpus
            elapsed = time.perf_counter() - start
            done = trained_trials(prep.study)
            first = min(done, key=lambda t: t.datetime_complete)
            walls = [TrialRecord.of(t).wall_s for t in done]
            row.update(
                trials=len(done),
                seconds=elapsed,
                trials_per_minute=60 * len(done) / elapsed,
                # after the first result: the rate once every worker is up
                steady_trials_per_minute=60 * (len(finished) - 1) / (finished[-1] - finished[0])
                if len(finished) > 1
                else None,
                first_result_s=finished[0] - start,
                first_trial_wall_s=TrialRecord.of(first).wall_s,
                mean_trial_wall_s=sum(walls) / len(walls),
                keep_sets=[TrialRecord.of(t).keep for t in done],
                load_after=os.getloadavg()[0],
            )
            runs.append(row)
            log(
                f"{label}: {row['trials_per_minute']:.2f} trials/min "
                f"({row['seconds']:.0f} s for {row['trials']})"
            )
    local_rate = runs[0]["trials_per_minute"]
    result = {
        "benchmark": "ray",
        "model": model,
        "dataset": dataset,
        "cpu_cores": cpus,
        "trials_per_run": trials,
        "sampler": "random (seed 0): every run trains the same keep sets",
        "runs": runs,
        "speed_up_vs_local": {r["backend"]: r["trials_per_minute"] / local_rate for r in runs},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result


def long_csv(path: Path, rows: int = 70_000, seed: int = 0) -> Path:
    """An ETTm-sized CSV: 15-minute steps, daily and weekly seasons, a drift and noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    value = (
        10
        + 3 * np.sin(2 * np.pi * t / 96)
        + 1.5 * np.sin(2 * np.pi * t / (96 * 7))
        + np.cumsum(rng.normal(0, 0.02, rows))
        + rng.normal(0, 0.5, rows)
    )
    dates = pd.date_range("2020-01-01", periods=rows, freq="15min")
    pd.DataFrame({"date": dates, "OT": value}).to_csv(path, index=False)
    return path


def startup(model: str, datasets: list[str], threads: int | None, out: Path, log=print) -> dict:
    """Time to trial 1 per dataset (`long-csv`: a generated ETTm-sized CSV): every step a new
    study runs before it (load, latency profile, full model zero-shot and re-aligned on
    validation, importance scores, the screen), each timed, and the test split's size and
    forecast speed (the test metrics run after the search, once for the full model zero-shot,
    once re-aligned, once for the selection)."""
    from autoprune.evaluate import evaluate
    from autoprune.importance import METHODS
    from autoprune.search.cached import priors

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            if dataset == "long-csv":
                dataset = str(long_csv(Path(tmp) / "long-15min.csv"))
            log(f"{Path(dataset).name}: a new study up to its first trial ...")
            steps: dict[str, float] = {}
            start = time.perf_counter()
            prep = prepare(
                SearchOptions(
                    study=f"bench-startup-{len(runs)}",
                    model=model,
                    dataset=dataset,
                    seed=0,
                    threads=threads,
                    storage=f"sqlite:///{tmp}/startup-{len(runs)}.db",
                )
            )
            steps["prepare_s"] = time.perf_counter() - start
            lap = time.perf_counter()
            ensure_reference(prep, log)
            steps["reference_s"] = time.perf_counter() - lap
            lap = time.perf_counter()
            priors(prep, list(METHODS), log)
            steps["importance_s"] = time.perf_counter() - lap
            lap = time.perf_counter()
            allowed = screen_allowance(prep, DEFAULT_TRIALS)  # as a default search would
            prep.study.sampler = study_sampler(prep, log, allowed)
            steps["screen_s"] = time.perf_counter() - lap
            to_trial_1 = time.perf_counter() - start
            ctx = prep.ctx
            setting = ctx.setting
            windows = len(
                ctx.series.eval_windows("test", setting.context_length, setting.horizon, None)
            )
            sample = min(windows, 1024)
            lap = time.perf_counter()
            evaluate(
                ctx.adapter,
                ctx.adapter.model,
                ctx.series,
                "test",
                setting,
                max_windows=sample,
                num_samples=ctx.space.num_samples,
            )
            per_second = sample / (time.perf_counter() - lap)
            runs.append(
                {
                    "dataset": Path(dataset).name,
                    "rows": len(ctx.series.values),
                    "seconds_to_trial_1": round(to_trial_1, 2),
                    **{k: round(v, 2) for k, v in steps.items()},
                    "test_windows": windows,
                    "test_windows_per_s": round(per_second, 1),
                    # what running the full model's test metrics (zero-shot and re-aligned)
                    # before trial 1 would add, at the speed just measured
                    "deferred_test_s_estimate": round(2 * windows / per_second, 1),
                }
            )
            log(f"  {runs[-1]}")
    result = {
        "benchmark": "startup",
        "model": model,
        "threads": threads,
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result
