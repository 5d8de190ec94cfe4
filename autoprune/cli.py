"""Command line: parse -> call the library -> print. User errors exit 2 with one line."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from autoprune.errors import AutoPruneError

# `search --screen` and `bench replay --screen` (autoprune.search.options.SCREENS, spelled out so
# that parsing the command line imports no model code)
SCREEN_MODES = ("auto", "on", "off")

# tables written to a file or a pipe are not squeezed into rich's default 80 columns
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
out = Console(highlight=False, soft_wrap=True, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _text(value: str) -> str:
    """An option's text; an empty one would silently mean the option's default."""
    if not value.strip():
        raise argparse.ArgumentTypeError(
            f"{value!r} is empty; give a value or leave the option out for its default"
        )
    return value


def _whole_number(low: int, high: int | None = None):
    """An argparse type: a whole number within bounds, said in one line when it is not."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{value!r} must be a whole number {bound}")
        return number

    return parse


_count = _whole_number(1)  # a count or a length: 0 would silently mean the option's default
_seed = _whole_number(0, 2**32 - 1)  # what numpy accepts as a seed


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        type=_text,
        help="registered name (see `list datasets`) or a CSV path; search takes several, "
        "comma-separated (one study, one pruned model for all)",
    )
    parser.add_argument("--target", type=_text, help="target column of a CSV (default OT)")
    parser.add_argument(
        "--freq", type=_text, help="pandas frequency of a CSV, e.g. h, 15min, D (inferred)"
    )
    parser.add_argument(
        "--split", type=_text, help="train,val,test as fractions (0.7,0.1,0.2) or rows"
    )
    parser.add_argument(
        "--context-length",
        type=_count,
        help="past steps a forecast sees (default: the dataset's, 512 for etth1, unless the "
        "search space or an exported checkpoint sets one)",
    )
    parser.add_argument(
        "--horizon",
        type=_count,
        help="steps forecast (default: the dataset's, 96 for etth1, unless the search space or "
        "an exported checkpoint sets one)",
    )
    parser.add_argument(
        "--patch-size",
        type=_count,
        help="one of the model's patch sizes (default: the one for the dataset's frequency, "
        "unless the search space or an exported checkpoint sets one)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (what, and where to read more), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="autoprune",
        description="Find which layers of a time-series foundation model can be removed.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    search = commands.add_parser("search", help="run or resume a layer-pruning study")
    search.add_argument(
        "--model", type=_text, help="alias, hub id or local directory (default moirai-tiny)"
    )
    _add_data_options(search)
    search.add_argument("--study", type=_text, help="study name (default <model>-<dataset>)")
    search.add_argument(
        "--trials",
        type=int,
        help="trained keep sets the study should reach in total (default 30, and on to at most "
        "45 while the front is still growing)",
    )
    search.add_argument(
        "--compute",
        type=float,
        metavar="SECONDS",
        help="search compute the study may spend in total, all runs (the steps before the "
        "trials and every trial, as the report's Compute table counts them); no trial starts "
        "after it is spent; with it, --trials caps only when given",
    )
    search.add_argument(
        "--storage", type=_text, help="Optuna storage URL (default SQLite under studies/)"
    )
    search.add_argument(
        "--sampler",
        type=_text,
        help="screened (default), tpe, tpe-independent, nsga2, random, gp, exhaustive",
    )
    search.add_argument(
        "--seed", type=_seed, help="the sampler's and every re-alignment's seed (default 0)"
    )
    search.add_argument(
        "--space", type=_text, help="search-space TOML (default search_spaces/<model>.toml)"
    )
    search.add_argument(
        "--objective", type=_text, help="accuracy objective: mase (default), crps, mse, mae"
    )
    search.add_argument(
        "--rule",
        help="selection rule: within:<accuracy><=<x>%% (default: within:<accuracy><=0%%), knee or "
        "budget:<objective><=<value>[%%]",
    )
    search.add_argument(
        "--fidelity",
        choices=["multi", "single"],
        help="multi (default): a short re-alignment first, the full budget only for keep sets "
        "that can still reach the front; single: the full budget for every keep set",
    )
    search.add_argument(
        "--warm-start",
        metavar="STUDY[,STUDY]",
        help="finished studies of the same model (another dataset or setting) whose trials guide "
        "the screened sampler as prior knowledge; of several, it follows the one that best "
        "predicts this study's trials so far. A bet that their good keep sets are this "
        "dataset's: in replays it needed from a third to nearly three times the compute of "
        "a cold start to 95%% of the true hypervolume (README, Warm starts)",
    )
    search.add_argument(
        "--screen",
        choices=SCREEN_MODES,
        help="the screened sampler's zero-shot screen of every keep set: auto (default) runs it "
        "unless its first keep sets project it past a twentieth of the search's expected compute; "
        "on: always; off: never (the sampler then reads only which layers a keep set keeps)",
    )
    search.add_argument(
        "--aggregate",
        choices=["geomean", "worst"],
        help="with several --dataset a,b,...: how the accuracy objective combines each "
        "dataset's ratio to the re-aligned full model (default geomean)",
    )
    search.add_argument(
        "--holdout-dataset",
        type=_text,
        metavar="D[,D]",
        help="datasets never used for re-alignment or selection: at the end the selection and "
        "the full model forecast their test split zero-shot",
    )
    search.add_argument(
        "--continue-stopped",
        action="store_true",
        help="train every keep set stopped at a rung to the full budget",
    )
    search.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    search.add_argument(
        "--enqueue",
        type=_text,
        help="seed a new study with one-shot keep sets, e.g. bi,screen,drop-last "
        "(see `autoprune baselines --help`)",
    )
    search.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local (default): trials one by one in this process; ray: in parallel on Ray Tune",
    )
    search.add_argument("--workers", type=int, help="ray: trials run at once (default 1)")
    search.add_argument(
        "--cpus-per-trial",
        type=float,
        help="ray: CPUs (and torch threads) per trial (default: the cluster's CPUs / workers)",
    )
    search.add_argument(
        "--gpus-per-trial", type=float, help="ray: GPUs per trial, fractions share one (e.g. 0.25)"
    )
    search.add_argument(
        "--address",
        type=_text,
        help="ray: join a running cluster (auto or HOST:PORT; default: start one)",
    )

    evaluate = commands.add_parser("evaluate", help="forecast accuracy of a model on a split")
    evaluate.add_argument(
        "--model", type=_text, required=True, help="alias, hub id or local directory"
    )
    _add_data_options(evaluate)
    evaluate.add_argument("--eval-split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--max-windows", type=_count, help="cap on rolling windows (default all)")
    evaluate.add_argument(
        "--num-samples", type=_count, help="sample paths per window (default 100, or the export's)"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON only")

    listing = commands.add_parser("list", help="list models, datasets, studies or samplers")
    listing.add_argument("what", choices=["models", "datasets", "studies", "samplers"])
    listing.add_argument("--json", action="store_true")

    report = commands.add_parser("report", help="write a study's report")
    report.add_argument("study")
    report.add_argument("--out", type=Path, help="folder (default studies/<name>/report)")
    report.add_argument("--rule", help="selection rule (default: the one used by search)")
    report.add_argument(
        "--test-front",
        action="store_true",
        help="also compute test metrics of every front point (re-trains each; the report "
        "says how long it would take)",
    )
    report.add_argument(
        "--threads", type=_count, help="torch CPU threads for re-training (default: all cores)"
    )
    report.add_argument("--storage", type=_text)
    report.add_argument("--device", default="auto")

    dominance = commands.add_parser(
        "dominance",
        help="per study (dataset): the fewest kept layers within x%% of the full model",
    )
    dominance.add_argument("studies", type=_text, help="comma-separated study names")
    dominance.add_argument(
        "--levels", default="1,2,5", help="percent from the full model (default 1,2,5)"
    )
    dominance.add_argument("--out", type=Path, help="folder (default studies/dominance)")
    dominance.add_argument(
        "--threads", type=_count, help="torch CPU threads for re-training (default: all cores)"
    )
    dominance.add_argument("--storage", type=_text)
    dominance.add_argument("--device", default="auto")

    compare = commands.add_parser(
        "compare",
        help="studies of one model and dataset: their fronts on one latency profile, and each "
        "one's hypervolume over the compute it spent",
    )
    compare.add_argument("studies", type=_text, help="comma-separated study names")
    compare.add_argument(
        "--profile-from",
        type=_text,
        help="study whose latency profile and full model judge all (default the first named)",
    )
    compare.add_argument("--out", type=Path, help="folder (default studies/compare)")
    compare.add_argument("--storage", type=_text)
    compare.add_argument("--json", action="store_true", help="print JSON only")

    export = commands.add_parser("export", help="write a pruned checkpoint of a study")
    export.add_argument("study")
    export.add_argument("--trial", type=int, help="trial number (default: the selection)")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--storage", type=_text)
    export.add_argument("--device", default="auto")
    baselines = commands.add_parser(
        "baselines", help="train one-shot baseline keep sets into a study, for its report"
    )
    baselines.add_argument("study")
    baselines.add_argument(
        "--kinds",
        default="drop-last,random,screen,bi,angular,cka,few-layer,ablation",
        help="comma-separated: drop-last, random, screen, bi, angular, cka, few-layer, ablation",
    )
    baselines.add_argument(
        "--sizes", type=_text, help="kept-layer counts, e.g. 3,6,9 (default 25/50/75%%)"
    )
    baselines.add_argument("--storage", type=_text)
    baselines.add_argument("--device", default="auto")

    scoring = commands.add_parser("score", help="per-layer importance scores (priors)")
    scoring.add_argument("--model", type=_text, default="moirai-tiny")
    _add_data_options(scoring)
    scoring.add_argument(
        "--method",
        type=_text,
        help="bi, angular, cka, few-layer or ablation (default: all of them)",
    )
    scoring.add_argument(
        "--calib-windows", type=_count, default=64, help="calibration windows from the train split"
    )
    scoring.add_argument(
        "--knob",
        action="append",
        metavar="NAME=VALUE",
        help="a method's knob, repeatable: few-layer alpha, k, lam, tau, exempt_ends; angular n",
    )
    scoring.add_argument("--json", action="store_true")

    bench = commands.add_parser(
        "bench",
        help="benchmarks that write JSON: overhead, truth (ground-truth tables), replay, "
        "ray (trials per minute for 1 vs 2 Ray workers), startup (time to trial 1; "
        "--dataset etth1,long-csv)",
    )
    bench.add_argument("what", choices=["overhead", "truth", "replay", "verify", "ray", "startup"])
    bench.add_argument("--model", type=_text, default="moirai-tiny")
    bench.add_argument("--dataset", type=_text, default="etth1")
    bench.add_argument(
        "--trials", type=int, help="overhead: trials to time (default 50); ray: per run (12)"
    )
    bench.add_argument(
        "--workers",
        help="ray: worker counts to compare (1,2); truth: processes re-aligning keep sets at once "
        "(1), each with --threads torch threads (default: the cores shared out among them)",
    )
    bench.add_argument("--threads", type=int)
    bench.add_argument(
        "--space",
        type=_text,
        help="truth: build the table over this search-space TOML (e.g. max_kept = 4), not the "
        "model's own; the table's name gains the file's stem",
    )
    bench.add_argument(
        "--sample", type=int, help="truth: re-align this many random keep sets, not all"
    )
    bench.add_argument("--truth", type=Path, help="replay, verify: truth-<model>-<dataset>.json")
    bench.add_argument("--rows", type=int, default=3, help="verify: random rows to re-evaluate")
    bench.add_argument("--seeds", type=int, default=20, help="replay: seeds per strategy")
    bench.add_argument("--budget", type=int, default=100, help="replay: trials per seed")
    bench.add_argument("--strategy", action="append", help="replay: only these strategies")
    bench.add_argument(
        "--warm-start",
        type=lambda text: [Path(p.strip()) for p in text.split(",") if p.strip()],
        default=[],
        metavar="TABLE[,TABLE]",
        help="replay: other truth tables of the same model, for the warm-started strategies "
        "(several: one prior each, as `search --warm-start A,B` does)",
    )
    bench.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="replay: seed s of every strategy replays the table with each re-aligned accuracy "
        "multiplied by exp(N(0, NOISE^2)) drawn from s (e.g. 0.01), as if re-aligned with "
        "another seed (default 0: the table as measured)",
    )
    bench.add_argument(
        "--screen",
        choices=SCREEN_MODES,
        default="auto",
        help="replay: the screened strategies' zero-shot screen, as `search --screen` decides it: "
        "auto (default) pays for it unless it costs more than a twentieth of the budget's "
        "trials at the full model's trial; on: always; off: never",
    )
    bench.add_argument("--out", type=Path, help="output folder (default studies/bench)")
    return parser


def _progress_callback(progress: Progress, task: int, objectives: list[str], compute: bool):
    """The search's progress: trained trials of the target, or with `--compute` the seconds of
    search compute spent of the budget."""
    from autoprune.study import current_hypervolume, front_of, search_seconds

    def on_trial(study, trial=None) -> None:
        trials, mask = front_of(study)
        progress.update(
            task,
            completed=search_seconds(study) if compute else len(trials),
            trials=len(trials),
            front=int(mask.sum()),
            hv=current_hypervolume(study, objectives),
        )

    return on_trial


def _front_table(summary: dict) -> Table:
    from autoprune.report import counted

    objectives = summary["objectives"]
    selected = (summary.get("selection") or {}).get("trial")
    trained = counted(summary["trials"]["trained"], "trial")
    table = Table(title=f"Pareto front of {summary['study']} ({trained})")
    metric = objectives[0]
    for column in ("trial", "kept", "keep set", *objectives, f"test {metric}", "measured ms"):
        # headers on two lines and numbers never cut, so the table fits 80 columns; only a long
        # keep set wraps
        header = column.replace(" ", "\n").replace("_", "\n")
        table.add_column(header, justify="right", no_wrap=column != "keep set")
    for f in summary["front"]:
        mark = " *" if f["trial"] == selected else ""
        table.add_row(
            f"{f['trial']}{mark}",
            str(len(f["keep"])),
            " ".join(map(str, f["keep"])),
            *(f"{int(f[o]):,}" if o == "params" else f"{f[o]:.4g}" for o in objectives),
            f"{f['test'][metric]:.4g}" if f["test"] else "-",
            "-"
            if f["latency_measured_ms"] is None
            else f"{f['latency_measured_ms']:.1f}"
            + (" (off profile)" if f["latency_off_profile"] else ""),
        )
    return table


def _always_kept(space) -> str:
    """The study line's note of layers every keep set keeps, and how to search without them."""
    if not space.always_keep:
        return ""
    layers = ", ".join(map(str, space.always_keep))
    return f", layer(s) {layers} kept in every keep set (always_keep; a --space file can change it)"


def cmd_search(args: argparse.Namespace) -> int:
    from autoprune.report import collect, compute_line, write_report
    from autoprune.search.cached import ensure_reference
    from autoprune.search.options import SearchOptions, prepare
    from autoprune.search.run import search, trial_target
    from autoprune.study import search_seconds, selected_checkpoint, study_dir

    opts = SearchOptions(**{f.name: getattr(args, f.name) for f in fields(SearchOptions)})
    started = time.perf_counter()
    prep = prepare(opts)
    s = prep.settings
    err.print(
        f"study [bold]{prep.name}[/]: {s['model']} on {s['dataset']}, "
        f"{prep.ctx.adapter.num_layers} layers, objectives {', '.join(s['objectives'])}, "
        f"sampler {prep.sampler}, device {prep.ctx.device}"
        + _always_kept(prep.ctx.space)
        + (f", on Ray with {opts.workers or 1} workers" if opts.backend == "ray" else "")
        + (f", warm start from {s['warm_start']}" if s.get("warm_start") else "")
    )
    ensure_reference(prep, lambda m: err.print(m))
    budget = opts.compute
    counted = (
        [
            TextColumn("[bold]compute"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TextColumn("trials {task.fields[trials]}"),
        ]
        if budget
        else [TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn()]
    )
    with Progress(
        *counted,
        TextColumn("front {task.fields[front]}  HV {task.fields[hv]:.4f}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        total = budget or trial_target(opts, prep.ctx.space)
        task = progress.add_task("search", total=total, trials=0, front=0, hv=0.0)
        on_trial = _progress_callback(progress, task, s["objectives"], bool(budget))
        on_trial(prep.study)
        result = search(
            opts,
            log=lambda m: progress.console.print(m),
            on_trial=on_trial,
            prepared=prep,
            on_target=lambda trials: progress.update(task, total=trials),
        )
    if result["stopped"] == "exhausted":
        err.print("every keep set of the search space has been evaluated")
    elif result["stopped"] == "budget":
        err.print(
            f"the study has spent its compute budget: {search_seconds(prep.study):.0f} s of "
            f"search compute, --compute {budget:g} (the trial under way when it ran out finished)"
        )
    elif result["stopped"] == "stalled":
        err.print(
            "the sampler kept proposing keep sets already evaluated; stopped early - "
            "try another --sampler"
        )
    report_dir = study_dir(prep.name) / "report"
    writing = time.perf_counter()
    write_report(prep.study, report_dir)
    summary = collect(prep.study)
    written = time.perf_counter() - writing
    out.print(_front_table(summary))
    selection = summary.get("selection")
    if selection:
        full = summary["reference"]["realigned"]
        zero = summary["reference"]["zero_shot"]
        metric = s["objectives"][0]
        out.print(
            f"selected by {selection['rule']}: trial {selection['trial']}, keep "
            f"{selection['keep']} ({len(selection['keep'])}/{prep.ctx.adapter.num_layers} layers, "
            f"{selection['values']['params'] / full['params']:.0%} of the parameters)"
            if "params" in selection["values"]
            else f"selected trial {selection['trial']}"
        )
        out.print(
            f"test {metric}: selected {selection['test'][metric]:.4f} | full re-aligned "
            f"{full['test'][metric]:.4f} | full zero-shot {zero['test'][metric]:.4f}"
            + (
                f" ({summary['aggregate']} of each dataset's ratio to the re-aligned full model)"
                if summary["aggregate"]
                else ""
            )
        )
        for row in summary["per_dataset"]:
            out.print(
                f"  {row['dataset']}: selected {row['test_selected']:.4f} | full re-aligned "
                f"{row['test_full_realigned']:.4f} | full zero-shot "
                f"{row['test_full_zero_shot']:.4f}"
            )
        out.print(f"checkpoint: {selected_checkpoint(prep.study)}")
    for name, held in (summary.get("holdout") or {}).items():
        out.print(
            f"held-out {name}, test {metric} zero-shot: selected {held['selection'][metric]:.4f} "
            f"| full re-aligned {held['full_realigned'][metric]:.4f} | full zero-shot "
            f"{held['full_zero_shot'][metric]:.4f}"
        )
    for line in summary["findings"]:
        out.print(line)
    out.print(compute_line(summary["compute"]))
    total = time.perf_counter() - started
    out.print(
        f"report: {report_dir / 'report.html'}  ({total:.0f} s: the search "
        f"{total - result['finalize_seconds'] - written:.0f} s, then the selection, the test split "
        f"and the report {result['finalize_seconds'] + written:.0f} s)"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from autoprune.evaluate import evaluate_model

    result = evaluate_model(
        args.model,
        dataset=args.dataset,
        options={"target": args.target, "freq": args.freq, "split": args.split},
        split=args.eval_split,
        context_length=args.context_length,
        horizon=args.horizon,
        patch_size=args.patch_size,
        num_samples=args.num_samples,
        max_windows=args.max_windows,
        device=args.device,
    )
    metrics, naive = result["metrics"], result["seasonal_naive"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    table = Table(
        title=f"{args.model} on {result['dataset']} ({args.eval_split}, "
        f"{metrics['windows']} windows, context {result['context_length']}, "
        f"horizon {result['horizon']}, patch {result['patch_size']})"
    )
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("seasonal naive", justify="right")
    for name in ("mase", "crps", "mse", "mae"):
        table.add_row(name, f"{metrics[name]:.4f}", f"{naive[name]:.4f}")
    out.print(table)
    out.print(
        f"{result['layers']} layers, {result['params']:,} parameters; {metrics['seconds']:.1f} s"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict]
    if args.what == "models":
        from autoprune.models import MODELS, UNSUPPORTED, availability

        rows = [
            {
                "alias": e.alias,
                "family": e.family,
                "layers": e.num_layers,
                "params": e.params,
                "source": _short_source(e.source),
                "availability": availability(e),
                "description": e.description,
            }
            for e in MODELS.values()
        ] + [
            {"alias": "-", "family": family, "availability": "unsupported", "description": why}
            for family, why in UNSUPPORTED.items()
        ]
    elif args.what == "datasets":
        from autoprune.data import DATASETS

        rows = [
            {
                "name": d.name,
                "freq": d.freq,
                "target": d.target,
                "split": "/".join(f"{p:g}" for p in d.split),
                "context": d.context_length,
                "horizon": d.horizon,
                "bundled": d.bundled,
                "licence": d.licence,
                "source": d.url,
                "sha256": d.sha256,
            }
            for d in DATASETS.values()
        ]
    elif args.what == "studies":
        from autoprune.study import list_studies

        rows = list_studies()
    else:
        from autoprune.samplers import DEFAULT_SAMPLER, SAMPLERS, describe

        rows = [
            {"name": n, "default": n == DEFAULT_SAMPLER, "description": describe(n)}
            for n in SAMPLERS
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        out.print(f"no {args.what} yet")
        return 0
    table = Table()
    # full URLs and checksums (and model descriptions) are in --json; the table keeps to what fits
    hidden = ("sha256", "description") if args.what in ("models", "datasets") else ()
    unsupported = [row for row in rows if row.get("availability") == "unsupported"]
    shown_rows = [row for row in rows if row not in unsupported]
    columns = [c for c in rows[0] if c not in hidden]
    cells = [{c: _cell(row.get(c, "")) for c in columns} for row in shown_rows]
    if args.what == "datasets":
        for row, shown in zip(shown_rows, cells, strict=True):
            shown["source"] = _short_url(row["source"])
    for column in columns:
        # numbers and names keep their full width; only the long free-text columns wrap
        longest = max(len(column), *(len(shown[column]) for shown in cells))
        narrow = column in LONG_COLUMNS
        table.add_column(column, overflow="fold", min_width=None if narrow else longest)
    for shown in cells:
        table.add_row(*shown.values())
    out.print(table)
    for row in unsupported:
        out.print(f"unsupported family {row['family']}: {row['description']}")
    if args.what == "datasets":
        out.print("full source URLs and sha256 checksums: autoprune list datasets --json")
    return 0


LONG_COLUMNS = ("source", "availability", "licence", "description")


def _short_url(url: str) -> str:
    """A download URL by its host and the first two parts of its path (owner/repository on
    GitHub), which is what a reader recognises in a table."""
    parsed = urlsplit(url)
    parts = [p for p in parsed.path.split("/") if p][:2]
    return "/".join([parsed.hostname or "", *parts]).replace("raw.githubusercontent.com", "github")


def _short_source(source: str) -> str:
    """Shipped checkpoints by their place in the package, hub ids as they are."""
    path = Path(source)
    return f"autoprune/models/{path.name}" if path.is_dir() else source


def _cell(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def cmd_report(args: argparse.Namespace) -> int:
    from autoprune.export import check_out
    from autoprune.search.run import report

    if args.out:
        check_out(args.out)
    log = lambda m: err.print(m)  # noqa: E731
    written = report(
        args.study,
        args.storage,
        args.out,
        args.rule,
        args.test_front,
        args.device,
        args.threads,
        log,
    )
    for path in written["paths"]:
        out.print(str(path))
    for line in written["findings"]:
        out.print(line)
    return 0


def cmd_dominance(args: argparse.Namespace) -> int:
    from autoprune.dominance import dominance, markdown, parse_levels, write
    from autoprune.export import check_out
    from autoprune.study import load_study, studies_root

    levels = parse_levels(args.levels)
    names = [name.strip() for name in args.studies.split(",") if name.strip()]
    out_dir = args.out or studies_root() / "dominance"
    check_out(out_dir)
    for name in names:
        load_study(name, args.storage)  # every study exists before anything is re-trained
    result = dominance(names, args.storage, levels, args.device, args.threads, err.print)
    out.print(markdown(result), markup=False)
    for path in write(result, out_dir).values():
        out.print(str(path))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from autoprune.compare import SHARE, compare, short, write
    from autoprune.export import check_out
    from autoprune.study import load_study, studies_root

    names = list(dict.fromkeys(n.strip() for n in args.studies.split(",") if n.strip()))
    out_dir = args.out or studies_root() / "compare"
    check_out(out_dir)
    result = compare({name: load_study(name, args.storage) for name in names}, args.profile_from)
    paths = write(result, out_dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    reach = f"compute_s_to_{SHARE:.0%}_of_best"
    table = Table(
        title=f"{short(result['model'])} on {short(result['dataset'])}, on "
        f"{result['profile_from']}'s latency "
        "profile and full model"
    )
    columns = ("study", "sampler", "fidelity", "trained", "stopped", "front", "hypervolume")
    for column in (*columns, "of best", "compute s", f"s to {SHARE:.0%} of best"):
        table.add_column(column, justify="left" if column == "study" else "right")
    for name, row in result["studies"].items():
        table.add_row(
            name,
            str(row["sampler"]),
            str(row["fidelity"]),
            str(row["trained"]),
            str(row["stopped"]),
            str(row["front"]),
            f"{row['hypervolume']:.4f}",
            f"{row['ratio_to_best']:.1%}",
            f"{row['compute_s']:.0f}",
            "-" if row[reach] is None else f"{row[reach]:.0f}",
        )
    out.print(table)
    for path in paths.values():
        out.print(str(path))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from autoprune.search.finalize import export

    log = lambda m: err.print(m)  # noqa: E731
    exported = export(args.study, args.storage, args.out, args.trial, args.device, log)
    out.print(f"exported trial {exported['trial']} (keep {exported['keep']}) to {args.out}")
    return 0


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AutoPruneError(
            f"{option} {text!r} is not a comma-separated list of whole numbers"
        ) from None


def cmd_baselines(args: argparse.Namespace) -> int:
    from autoprune.baselines import check_kinds
    from autoprune.search.run import run_baselines

    kinds = check_kinds(k.strip() for k in args.kinds.split(",") if k.strip())
    sizes = _int_list(args.sizes, "--sizes") if args.sizes else None
    log = lambda m: err.print(m)  # noqa: E731
    result = run_baselines(args.study, args.storage, kinds, sizes, args.device, log)
    table, objectives = result["table"], result["objectives"]
    view = Table(title=f"one-shot baselines of {args.study}")
    for column in ("baseline", "kept", "keep set", "trial", *objectives):
        view.add_column(column, justify="right")
    for row in table:
        values = row["values"] or [float("nan")] * len(objectives)
        view.add_row(
            row["baseline"],
            str(row["kept"]),
            " ".join(map(str, row["keep"])),
            str(row["trial"]),
            *(f"{v:.4g}" for v in values),
        )
    out.print(view)
    out.print(f"report: {result['report'] / 'report.html'}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import numpy as np

    from autoprune.importance import score_model

    result = score_model(
        args.model,
        args.dataset or "etth1",
        {"target": args.target, "freq": args.freq, "split": args.split},
        (args.context_length, args.horizon, args.patch_size),
        args.method,
        args.calib_windows,
        _knobs(args.knob or []),
        args.device,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    methods, values = list(result["methods"]), result["methods"]
    layers = len(values[methods[0]])
    table = Table(
        title=f"layer importance of {args.model} on {result['dataset']} "
        f"(higher = more important; {result['calibration_windows']} calibration windows)"
    )
    table.add_column("layer", justify="right", min_width=5)
    for method in methods:
        table.add_column(method, justify="right")
    for layer in range(layers):
        table.add_row(str(layer), *(f"{values[m][layer]:.4g}" for m in methods))
    out.print(table)
    for method in methods:
        ranked = np.argsort(-np.asarray(values[method]), kind="stable")
        out.print(f"{method:>10} ranks layers: {' '.join(map(str, ranked))}")
    out.print("; ".join(f"{label}: {s:.2f} s" for label, s in result["seconds"].items()))
    return 0


def _knobs(pairs: list[str]) -> dict[str, float | int | bool]:
    """`--knob alpha=0.7 --knob k=3 --knob exempt_ends=true` as typed values."""
    knobs: dict[str, float | int | bool] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        lowered = text.strip().lower()
        try:
            if not sep or not name.strip():
                raise ValueError
            if lowered in ("true", "false"):
                knobs[name.strip()] = lowered == "true"
            else:
                number = float(text)
                knobs[name.strip()] = (
                    int(number) if number.is_integer() and "." not in text else number
                )
        except ValueError:
            raise AutoPruneError(
                f"--knob {pair!r} is not NAME=VALUE with a number or true/false, "
                "e.g. --knob alpha=0.7"
            ) from None
    return knobs


def cmd_bench(args: argparse.Namespace) -> int:
    folder = args.out or Path("studies/bench")
    if args.space and args.what != "truth":
        raise AutoPruneError(
            f"--space applies to `bench truth` only; `bench {args.what}` takes the space from "
            "the model (or, replaying, from the table, which records the space it was built on)"
        )
    if args.what == "truth":
        from autoprune.bench.truth import build, truth_paths

        workers = _int_list(args.workers or "1", "--workers")
        if len(workers) != 1:
            raise AutoPruneError(
                f"--workers {args.workers!r}: bench truth takes one number, the processes "
                "re-aligning keep sets at once"
            )
        meta = build(
            args.model,
            args.dataset,
            folder,
            args.sample,
            lambda m: err.print(m),
            args.threads,
            args.space,
            workers[0],
        )
        correlation = meta["rank_correlation"]
        for fidelity, values in correlation.items():
            within = values["within_size_weighted_mean"]
            out.print(
                f"Spearman({fidelity}, re-aligned val MASE): overall "
                f"{values['overall']:.3f}, within equal size "
                f"{'-' if within is None else format(within, '.3f')}"
            )
        for path in truth_paths(args.model, args.dataset, folder, args.space):
            out.print(f"written to {path}")
        return 0
    if args.what == "replay":
        return _replay(args, folder)
    if args.what == "verify":
        return _verify(args)
    if args.what == "ray":
        return _ray(args, folder)
    if args.what == "startup":
        return _startup(args, folder)
    return _overhead(args, folder)


def _startup(args: argparse.Namespace, folder: Path) -> int:
    from autoprune.bench.overhead import startup

    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    result = startup(
        args.model, datasets, args.threads, folder / "startup.json", lambda m: err.print(m)
    )
    table = Table(title=f"fixed cost of a new study ({args.model})")
    columns = ("dataset", "rows", "to trial 1 s", "screen s", "test windows", "windows/s")
    for column in columns:
        table.add_column(column, justify="right")
    for run in result["runs"]:
        table.add_row(
            run["dataset"],
            f"{run['rows']:,}",
            f"{run['seconds_to_trial_1']:.1f}",
            f"{run['screen_s']:.1f}",
            f"{run['test_windows']:,}",
            f"{run['test_windows_per_s']:.0f}",
        )
    out.print(table)
    out.print(f"written to {folder / 'startup.json'}")
    return 0


def _replay(args: argparse.Namespace, folder: Path) -> int:
    from autoprune.bench.replay import replay_truth

    # a bar per strategy over its seeds: GPSampler's take minutes each
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("seeds"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # a log file gets the summary lines alone
    ) as progress:
        task = progress.add_task("replaying", total=1)

        def on_seed(name: str, done: int, total: int) -> None:
            if done == 0:  # the next strategy: its own clock for the time left
                progress.reset(task, total=total, description=name)
            else:
                progress.update(task, completed=done)

        target, png = replay_truth(
            args.truth,
            args.seeds,
            args.budget,
            args.strategy,
            folder,
            args.warm_start,
            lambda m: progress.console.print(m),
            args.noise,
            args.screen,
            on_seed,
        )
    out.print(f"written to {target} and {png}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from autoprune.bench.truth import verdicts, verify

    if args.truth is None or not args.truth.is_file():
        raise AutoPruneError(f"--truth {args.truth} is not a file (studies/bench/truth-*.json)")
    if args.rows < 1:
        raise AutoPruneError(f"--rows {args.rows} must be at least 1")
    rows = verify(args.truth, args.rows, log=lambda m: err.print(m))
    table = Table(title=f"{args.truth.name}: stored against re-evaluated now")
    for column in (
        "keep set",
        "val mase",
        "now",
        "rel. diff",
        "zero-shot mase",
        "now",
        "rel. diff",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        cells = [" ".join(map(str, row["keep"]))]
        for metric in ("mase", "zs_mase"):
            now, diff = row[f"{metric}_now"], row[f"{metric}_diff"]
            cells += [f"{row[metric]:.6f}", f"{now:.6f}", f"{diff:.1e}"]
        table.add_row(*cells)
    out.print(table)
    found = verdicts(rows)
    for metric, label in (("mase", "re-aligned"), ("zs_mase", "zero-shot")):
        v = found[metric]
        out.print(
            f"{label}: {'reproduced' if v['reproduced'] else 'NOT reproduced'}, largest relative "
            f"difference {v['worst']:.1e} (tolerance {v['tolerance']:g})"
        )
    return 0 if all(v["reproduced"] for v in found.values()) else 1


def _ray(args: argparse.Namespace, folder: Path) -> int:
    from autoprune.bench.overhead import ray_scaling

    trials = 12 if args.trials is None else args.trials
    workers = _int_list(args.workers or "1,2", "--workers")
    if trials < 1 or not workers or min(workers) < 1:
        raise AutoPruneError("--trials and every --workers count must be at least 1")
    target = folder / f"ray-{args.model}-{args.dataset}.json"
    result = ray_scaling(
        trials, args.model, args.dataset, tuple(workers), target, lambda m: err.print(m)
    )
    table = Table(title=f"trials per minute ({args.model}, {args.dataset}, {trials} trials a run)")
    for column in ("backend", "CPUs/trial", "trials/min", "after first", "vs local", "Ray start s"):
        table.add_column(column, justify="right")
    for run in result["runs"]:
        steady = run["steady_trials_per_minute"]
        table.add_row(
            run["backend"],
            f"{run['cpus_per_trial']:g}",
            f"{run['trials_per_minute']:.2f}",
            f"{steady:.2f}" if steady else "-",
            f"{result['speed_up_vs_local'][run['backend']]:.2f}x",
            f"{run['ray_start_s']:.1f}" if "ray_start_s" in run else "-",
        )
    out.print(table)
    out.print(f"written to {target}")
    return 0


def _overhead(args: argparse.Namespace, folder: Path) -> int:
    from autoprune.bench.overhead import PARTS, overhead

    trials = 50 if args.trials is None else args.trials
    if trials < 1:
        raise AutoPruneError(f"--trials {trials} must be at least 1")
    result = overhead(
        trials,
        args.model,
        args.dataset,
        args.threads,
        folder / "overhead.json",
        lambda m: err.print(m),
    )
    table = Table(
        title=f"per-trial wall time over {result['trials']} trials "
        f"(+{result['look_ups']} look-ups) "
        f"({args.model}, {args.dataset}, {result['device']})"
    )
    table.add_column("part")
    table.add_column("mean s", justify="right")
    table.add_column("share", justify="right")
    for part in (*PARTS, "engine_s"):
        table.add_row(
            part.removesuffix("_s"),
            f"{result['mean_s'][part]:.3f}",
            f"{result['share_of_trial_time'][part]:.1%}",
        )
    out.print(table)
    rss = result["rss_mb"]
    out.print(
        f"engine overhead {result['engine_overhead_pct']:.2f}% of trial time; resident "
        f"memory {rss['after_first_trial']:.0f} MB after trial 1, "
        f"{rss['after_last_trial']:.0f} MB after trial {result['trials']} "
        f"(max {rss['max']:.0f} MB)"
    )
    out.print(f"written to {folder / 'overhead.json'}")
    return 0


COMMANDS = {
    "search": cmd_search,
    "bench": cmd_bench,
    "score": cmd_score,
    "baselines": cmd_baselines,
    "evaluate": cmd_evaluate,
    "list": cmd_list,
    "report": cmd_report,
    "compare": cmd_compare,
    "export": cmd_export,
    "dominance": cmd_dominance,
}


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def _write_failure(exc: BaseException) -> str | None:
    """A full disk or a read-only folder, said in one line; None for anything else (a bug).
    Optuna wraps a failed storage write in its own errors: the OSError is found in the chain."""
    while exc is not None and not (isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS):
        exc = exc.__cause__ or exc.__context__
    if exc is None:
        return None
    where = f" {exc.filename}" if exc.filename else ""
    return (
        f"cannot write{where}: {exc.strerror or exc}; finished trials are kept in the study - "
        "free space or make the folder writable (or choose another --out / "
        "AUTOPRUNE_STUDIES_DIR), then run the same command again"
    )


def main(argv: list[str] | None = None) -> int:
    from autoprune.study import quiet_optuna

    quiet_optuna()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv or ["search"])
    if args.command is None:
        args = parser.parse_args([*argv, "search"])
    try:
        return COMMANDS[args.command](args)
    except AutoPruneError as exc:
        if args.debug:
            raise
        err.print(f"autoprune: error: {exc}", markup=False)
        return 2
    except Exception as exc:
        message = _write_failure(exc)
        if message is None or args.debug:
            raise
        err.print(f"autoprune: error: {message}", markup=False)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted; finished trials are stored - run the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
