"""Ground-truth tables for the search-efficiency benchmark: for a model and dataset, every keep set
screened zero-shot and re-aligned (or a random sample of them), each row holding every fidelity a
strategy can buy and what it cost, so `replay` runs strategies as look-ups. Written under
`studies/bench/` as `truth-<model>-<dataset>.csv` (one row per keep set) and `.json` (settings,
reference, latency profile, priors, correlations).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import torch

from autoprune.backends import local
from autoprune.data import load_series
from autoprune.errors import AutoPruneError
from autoprune.evaluate import Setting
from autoprune.export import atomic_write_text
from autoprune.importance import all_methods
from autoprune.metrics import METRICS
from autoprune.models import load_adapter
from autoprune.objective import TrialContext, predict_latency, run_trial, rung_steps
from autoprune.record import TrialRecord
from autoprune.screen import SCREEN_WINDOWS, all_keep_sets, screen, spearman
from autoprune.search.cached import ensure_reference, priors, screen_table
from autoprune.search.options import SearchOptions, prepare
from autoprune.search.prepared import Prepared
from autoprune.search.run import study_sampler
from autoprune.space import space_for_model
from autoprune.study import quiet_optuna, trained_trials
from autoprune.train import adamw_kind

TRUTH_SEED = 0  # every table's trials re-align with this seed
# how far `verify` may find a stored value moved: another CPU or torch build sums floats in
# another order; a zero-shot forward keeps that at float noise, a re-alignment's 30 Adam steps
# amplify it (measured: up to 1.3e-3 relative between the machine that built the tables and a
# later one). Near-ties in a table can swap.
VERIFY_TOLERANCE = {"mase": 1e-2, "zs_mase": 1e-4}


def truth_name(model: str, dataset: str, space: str | Path | None = None) -> str:
    """The table's study name and file stem; a table of another space than the model's own
    (`--space FILE`) carries that file's stem, so it never resumes or overwrites the default's."""
    name = f"truth-{Path(model).name}-{Path(dataset).stem}"
    return f"{name}-{Path(space).stem}" if space else name


def truth_paths(
    model: str, dataset: str, out: Path, space: str | Path | None = None
) -> tuple[Path, Path]:
    stem = truth_name(model, dataset, space)
    return out / f"{stem}.csv", out / f"{stem}.json"


def build(
    model: str,
    dataset: str,
    out: Path,
    sample: int | None = None,
    log=print,
    threads: int | None = None,
    space_file: str | None = None,
    workers: int = 1,
) -> dict:
    """Build (or resume) the tables; `sample` re-aligns that many random keep sets instead of
    all of them. Every keep set gets the full budget (single fidelity) and records its rungs.
    The re-aligned part is an ordinary autoprune study (`truth-<model>-<dataset>`, sampler
    `exhaustive`: with `sample`, its first keep sets are a uniform sample of the space's, drawn
    without repeats), so building it resumes after an interruption and can be carried
    across sessions; every layer is also scored by every importance method
    (`importance.all_methods`).

    A row's fidelities, each with what it cost: the zero-shot screen (`zs_nll`, `zs_mase`; its
    cost is the whole screen's, once per study), the rungs (`r3_mase`, `r10_mase`: the screen's
    measure after 3 and 10 of the 30 steps; `cost_r3`, `cost_r10`: seconds from pruning to that
    rung's value, the rungs before it included; `eval_r3`, `eval_r10`: each rung's evaluation,
    so a replay charges a strategy only the rungs it evaluates) and the full budget (`mase` and
    the other metrics; `cost_full`: the seconds a single-fidelity trial spends, rung evaluations
    excluded; `rungs_s`: what the rung evaluations added). `space_file` builds it over another
    search space than the model's shipped one (e.g. fewer layers' keep sets), as `search
    --space` does.

    `workers` processes re-align keep sets at once, each with `threads` torch threads (default:
    the machine's cores shared out among them); they share the study, so each keep set is
    trained once, and the table is the one a single process builds, its costs measured beside
    the other workers' trials."""
    if "," in dataset:
        raise AutoPruneError(
            f"bench truth builds one table per dataset; run it once for each of {dataset}"
        )
    if workers < 1:
        raise AutoPruneError(f"--workers {workers} must be at least 1")
    if workers > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    name = truth_name(model, dataset, space_file)
    prep, reference = table_study(model, dataset, threads, space_file, log)
    ctx, space = prep.ctx, prep.ctx.space
    sets = all_keep_sets(space)
    target = min(sample or space.size, space.size)
    by = f" in {workers} processes of {threads} thread{'s' * (threads != 1)}" if workers > 1 else ""
    log(f"re-aligning {target} of {space.size} keep sets{by} (resumable study {name!r}) ...")
    start = time.perf_counter()
    progress = Progress(target, len(trained_trials(prep.study)), log)
    helpers = start_workers(workers - 1, (model, dataset, threads, space_file, target))
    try:
        local.run(
            prep.study, ctx, target, lambda study, trial: progress(study), shared=bool(helpers)
        )
    except BaseException:  # Ctrl-C too: their trials under way are re-queued on the next run
        stop_workers(helpers, terminate=True)
        raise
    if failed := stop_workers(helpers):
        codes = ", ".join(map(str, failed))
        log(
            f"warning: {len(failed)} of the {workers} processes re-aligning keep sets failed "
            f"(exit codes {codes})"
        )
        if (done := len(trained_trials(prep.study))) < target:
            raise AutoPruneError(
                f"{done} of {target} keep sets are re-aligned: the study keeps each one "
                "finished; run the same command again to finish the table"
            )
    trials_s = time.perf_counter() - start

    start = time.perf_counter()
    zero_shot = screen_table(prep, log)
    screen_s = time.perf_counter() - start
    everything = tuple(range(ctx.adapter.num_layers))
    scores = priors(prep, all_methods(), log)

    realigned = {TrialRecord.of(t).keep_set: t for t in trained_trials(prep.study)}
    rungs = rung_steps(space.realign.steps)
    rows = []
    for keep in sets:
        trial = realigned.get(keep)
        row = {
            "keep": " ".join(map(str, keep)),
            "kept": len(keep),
            "params": ctx.adapter.params(keep),
            "latency_ms": round(predict_latency(ctx.profile, keep), 4),
            "zs_nll": zero_shot[keep]["nll"],
            "zs_mase": zero_shot[keep]["mase"],
            "trial": trial.number if trial else None,
        }
        for metric in METRICS:
            row[metric] = TrialRecord.of(trial).metric(metric) if trial else None
        row |= fidelity_costs(trial, rungs)
        rows.append(row)
    meta = {
        "model": model,
        "weights_sha256": prep.settings["weights_sha256"],
        "dataset": dataset,
        "study": name,
        "setting": prep.settings["setting"],
        "realign": prep.settings["realign"],
        "evaluation": prep.settings["evaluation"],
        "objectives": prep.settings["objectives"],
        "space": prep.settings["space"],
        "space_file": space_file,
        "space_size": space.size,
        "realigned": len(realigned),
        "reference": {
            k: {m: v[m] for m in (*METRICS, "params", "latency_ms")} for k, v in reference.items()
        },
        "latency_profile": ctx.profile,
        "screen_windows": SCREEN_WINDOWS,
        "rungs": list(rungs),
        "load_average": os.getloadavg(),  # timings are costs: how busy the machine was
        "threads": torch.get_num_threads(),
        "adamw": adamw_kind(ctx.device, ctx.fused_adamw),  # the update its re-alignments ran
        "workers": workers,  # processes re-aligning at once: each cost measured beside the others
        "screen_full": zero_shot[everything],
        "priors": scores,
        "seconds": {
            "trials_this_run": round(trials_s, 1),
            "screen_all": round(screen_s, 1),
            "mean_trial": float(np.mean([TrialRecord.of(t).wall_s for t in realigned.values()])),
            # the unit of `search --screen auto`'s allowance, which a replay decides as search does
            "full_trial": round(sum(reference["realigned"]["timing"].values()), 4),
        },
        "rank_correlation": correlations(rows),
    }
    csv_path, json_path = truth_paths(model, dataset, out, space_file)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(csv_path, buffer.getvalue())
    atomic_write_text(json_path, json.dumps(meta, indent=2) + "\n")
    return meta


def table_study(
    model: str, dataset: str, threads: int | None, space_file: str | None, log
) -> tuple[Prepared, dict]:
    """The study behind a table (single fidelity, every keep set once: `exhaustive`), opened with
    its sampler set, and its reference (full model and latency profile, computed once per study;
    no test metrics here)."""
    prep = prepare(
        SearchOptions(
            study=truth_name(model, dataset, space_file),
            model=model,
            dataset=dataset,
            seed=TRUTH_SEED,
            sampler="exhaustive",
            fidelity="single",
            threads=threads,
            space=space_file,
        )
    )
    prep.ctx.all_rungs = True  # a table holds every fidelity a strategy can buy
    reference = ensure_reference(prep, log, keep_model=False)
    prep.study.sampler = study_sampler(prep, log)
    return prep, reference


def realign_share(
    model: str, dataset: str, threads: int | None, space_file: str | None, target: int
) -> None:
    """A helper process of `build --workers`: re-aligns keep sets of the table's study, which
    the first process has set up (reference and latency profile stored), until the trained
    keep sets and those under way in every process make `target`. It says nothing: failures are
    in the study and its exit code, and a Ctrl-C, which reaches every process, the first reports."""
    quiet_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        prep, _ = table_study(model, dataset, threads, space_file, lambda m: None)
        local.run(prep.study, prep.ctx, target, shared=True)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def start_workers(count: int, args: tuple) -> list:
    """`count` helper processes running `realign_share(*args)`; spawned, not forked, so none
    inherits this process's torch threads or open storage connections."""
    context = multiprocessing.get_context("spawn")
    helpers = [context.Process(target=realign_share, args=args) for _ in range(count)]
    for helper in helpers:
        helper.start()
    return helpers


def stop_workers(helpers: list, terminate: bool = False) -> list[int]:
    """Wait for the helpers to finish (or stop them first); their non-zero exit codes."""
    for helper in helpers:
        if terminate:
            helper.terminate()
        helper.join()
    return [h.exitcode for h in helpers if h.exitcode != 0]


def fidelity_costs(trial, rungs: tuple[int, ...]) -> dict:
    """A trained keep set's rung values and what each fidelity cost, in seconds."""
    row: dict = {f"r{steps}_mase": None for steps in rungs}
    row |= {f"cost_r{steps}": None for steps in rungs}
    row |= {f"eval_r{steps}": None for steps in rungs}
    row |= {"cost_full": None, "rungs_s": None}
    record = TrialRecord.of(trial) if trial else TrialRecord()
    recorded, timing = record.rungs or {}, record.timing
    if not all(str(s) in recorded for s in rungs):
        return row
    evaluated = 0.0
    for steps in rungs:
        rung = recorded[str(steps)]
        evaluated += rung["eval_s"]
        row[f"r{steps}_mase"] = rung["mase"]
        row[f"cost_r{steps}"] = round(timing["prune_s"] + rung["train_s"] + evaluated, 4)
        row[f"eval_r{steps}"] = rung["eval_s"]
    parts = ("prune_s", "realign_s", "evaluate_s", "latency_s")  # latency: tables before 2026-12-06
    row["cost_full"] = round(sum(timing.get(p, 0.0) for p in parts), 4)
    row["rungs_s"] = round(evaluated, 4)
    return row


class Progress:
    """Every 25 keep sets: how many are re-aligned and, at this run's pace, about how long the
    rest will take (a build of hundreds of keep sets runs for an hour or more). Said once per 25:
    a trial that trains nothing new (a failure, a keep set drawn again) leaves the count where
    it was, and with several workers the count may pass a multiple of 25 between two looks."""

    def __init__(self, target: int, done: int, log) -> None:
        self.target, self.first, self.said, self.log = target, done, done, log
        self.start = time.perf_counter()

    def __call__(self, study) -> None:
        done = len(trained_trials(study))
        if done // 25 == self.said // 25:
            return
        self.said = done
        pace = (time.perf_counter() - self.start) / (done - self.first)
        left = max(self.target - done, 0) * pace
        self.log(f"{done}/{self.target} re-aligned, about {left / 60:.0f} min left")


def correlations(rows: list[dict], fidelities: Sequence[str] | None = None) -> dict:
    """Spearman between each cheap fidelity (zero-shot screens and rungs, or the columns named by
    `fidelities`) and re-aligned val MASE: over all re-aligned keep sets, and within sets of
    equal size (the ranking a screen must do once the cost is fixed), with the size-weighted
    mean of the latter."""
    done = [r for r in rows if r["mase"] is not None]
    result = {}
    rungs = [k for k in rows[0] if k.startswith("r") and k.endswith("_mase")] if rows else []
    for fidelity in fidelities or ("zs_nll", "zs_mase", *rungs):
        if any(r[fidelity] is None for r in done):
            continue
        within, weights = {}, {}
        for kept in sorted({r["kept"] for r in done}):
            group = [r for r in done if r["kept"] == kept]
            if len(group) >= 5:
                within[str(kept)] = spearman(
                    [r[fidelity] for r in group], [r["mase"] for r in group]
                )
                weights[str(kept)] = len(group)
        total = sum(weights.values())
        result[fidelity] = {
            "overall": spearman([r[fidelity] for r in done], [r["mase"] for r in done]),
            "within_size_weighted_mean": (
                sum(within[k] * weights[k] for k in within) / total if total else None
            ),
            "within_size": within,
        }
    return result


def load_truth(json_path: Path) -> tuple[dict, list[dict]]:
    json_path = Path(json_path)
    if not json_path.is_file() or not json_path.with_suffix(".csv").is_file():
        raise AutoPruneError(f"{json_path} and its .csv are not both there (a `bench truth` table)")
    meta = json.loads(json_path.read_text())
    rows = []
    with open(json_path.with_suffix(".csv")) as fh:
        for row in csv.DictReader(fh):
            parsed = {"keep": tuple(int(i) for i in row["keep"].split())}
            for key, value in row.items():
                if key != "keep":
                    parsed[key] = None if value == "" else float(value)
            rows.append(parsed)
    return meta, rows


def table_context(json_path: Path, meta: dict) -> TrialContext:
    """The context the table's trials ran in (its model, data, setting, re-alignment, seed and
    AdamW update, `adamw`; a table without one: this torch's), on the CPU; refused when the
    model's search space (or the table's `--space` file) has changed since it was built."""
    adapter = load_adapter(meta["model"])
    space_file = meta.get("space_file")
    if space_file and not Path(space_file).is_file():  # a path from where it was built: or beside
        space_file = Path(json_path).parent / Path(space_file).name
    space = space_for_model(meta["model"], adapter.num_layers, space_file)
    realign = space.realign.settings()
    if realign != meta["realign"] or space.val_windows != meta["evaluation"]["val_windows"]:
        raise AutoPruneError(
            f"{json_path} was built with re-alignment {meta['realign']} and evaluation "
            f"{meta['evaluation']}, but {meta['model']}'s search space now says {realign} and "
            f"{space.val_windows} windows; rebuild the table with `autoprune bench truth`"
        )
    series = load_series(meta["dataset"])
    cpu = torch.device("cpu")
    return TrialContext(
        adapter,
        series,
        Setting(**meta["setting"]),
        space,
        cpu,
        TRUTH_SEED,
        fused_adamw=meta.get("adamw", adamw_kind(cpu)) == "fused",
        all_rungs=True,
    )


def random_rows(table: list[dict], rows: int, seed: int) -> list[dict]:
    """`rows` random re-aligned rows of a table (all of them if it has fewer), in table order."""
    trained = [r for r in table if r["mase"] is not None]
    picked = np.random.default_rng(seed).choice(len(trained), min(rows, len(trained)), False)
    return [trained[i] for i in sorted(picked)]


def verify(json_path: Path, rows: int, seed: int = 0, log=print) -> list[dict]:
    """Re-evaluate `rows` random re-aligned rows of a ground-truth table from scratch (prune,
    re-align with the table's budget and seed, evaluate; and the zero-shot screen of the same
    keep set) and return stored against measured values.

    It re-aligns with as many torch threads, and the same AdamW update, as the table was built
    with: another count sums in another order, which 30 Adam steps can amplify past the
    tolerance (measured on the 12-layer ETTh2 table's keep set [4 7 8 10]: 1 thread reproduces
    its val MASE exactly, 2 differ by 6%; the fused kernel moves 21 of the 254 rows of
    moirai-tiny-8's ETTh1 table, built with the for-loop, by more than 1%)."""
    meta, table = load_truth(json_path)
    ctx = table_context(json_path, meta)
    before = torch.get_num_threads()
    if meta.get("threads"):  # tables from before threads were recorded: this machine's count
        torch.set_num_threads(meta["threads"])
        log(f"re-aligning with {meta['threads']} torch thread(s), as the table was built")
    log(f"re-aligning with AdamW's {adamw_kind(ctx.device, ctx.fused_adamw)} update")
    setting = ctx.setting
    windows = ctx.series.eval_windows(
        "val", setting.context_length, setting.horizon, SCREEN_WINDOWS
    )
    try:
        result = [_reevaluate(ctx, windows, row, log) for row in random_rows(table, rows, seed)]
    finally:
        torch.set_num_threads(before)
    for row in result:
        row |= {f"{m}_diff": abs(row[f"{m}_now"] / row[m] - 1) for m in VERIFY_TOLERANCE}
    return result


def _reevaluate(ctx: TrialContext, windows, row: dict, log) -> dict:
    """One row of `verify`: its keep set pruned, re-aligned and screened again (on `windows`,
    the screen's validation windows, made once per `verify`)."""
    adapter, series, setting = ctx.adapter, ctx.series, ctx.setting
    log(f"re-evaluating keep set {list(row['keep'])} ...")
    model, record = run_trial(ctx, row["keep"])
    del model
    zero_shot = screen(
        adapter,
        adapter.model,
        windows,
        setting.horizon,
        setting.patch_size,
        series.seasonality,
        [row["keep"]],
    )[row["keep"]]
    return {
        "keep": list(row["keep"]),
        "mase": row["mase"],
        "mase_now": record["mase"],
        "zs_mase": row["zs_mase"],
        "zs_mase_now": zero_shot["mase"],
    }


def verdicts(rows: list[dict]) -> dict[str, dict]:
    """Per metric of `verify` (re-aligned `mase`, zero-shot `zs_mase`): the largest relative
    difference between stored and re-evaluated values, and whether it is within tolerance."""
    result = {}
    for metric, tolerance in VERIFY_TOLERANCE.items():
        worst = max((row[f"{metric}_diff"] for row in rows), default=0.0)
        result[metric] = {"worst": worst, "tolerance": tolerance, "reproduced": worst <= tolerance}
    return result
