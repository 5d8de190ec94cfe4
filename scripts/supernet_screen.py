"""A screen on shared re-aligned weights (a LayerDrop supernet), measured against an exhaustive
table (docs/search-efficiency.md, "A shared re-alignment as the screen").

The default screen scores each pruned model as it is. This one first re-aligns one copy of the
full model for `--steps` steps, each step on a keep set drawn uniformly from the table's space
(its other layers skipped, as LayerDrop and once-for-all networks train), with the table's
re-alignment settings (learning rate, batch, AdamW); then screens every keep set zero-shot on
those shared weights. Printed: Spearman of each screen with the table's full-budget val MASE,
overall and within equal size, and how far each screen, normalised by its full model's, is from
the normalised full-budget value (sd of the log ratio). `--out DIR` writes a copy of the table
whose screen is this one and whose screen seconds are the supernet's (training and screen), for
`autoprune bench replay` and the replay patch beside the replays.

    R=studies/bench/2026-12-05/rebuilt
    python scripts/supernet_screen.py $R/truth-moirai-tiny-8-etth1.json [--out COPY]

Moirai tables; one torch thread; ~10-20 s per 8-layer table.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from autoprune.bench.truth import correlations, load_truth, table_context
from autoprune.errors import AutoPruneError
from autoprune.objective import realign_batches
from autoprune.screen import SCREEN_WINDOWS, screen
from autoprune.train import fit

STEPS = 100  # chosen on ETTh1's rebuilt table (50: 0.35 within size, 100: 0.50, 300: 0.56)


def supernet(ctx, keeps: list[tuple[int, ...]], steps: int, seed: int = 0) -> torch.nn.Module:
    """A copy of the full model re-aligned `steps` steps on the re-alignment's batches, each step
    on a random keep set of `keeps`."""
    adapter = ctx.adapter
    net = copy.deepcopy(adapter.model)
    stack = adapter.layers(net)
    every = list(stack)
    draw = np.random.default_rng(seed + 1)

    def loss_fn(model, past, future, patch_size, step):
        keep = keeps[draw.integers(len(keeps))]
        del stack[:]
        stack.extend(every[i] for i in keep)
        try:
            return adapter.loss(model, past, future, patch_size)
        finally:
            del stack[:]
            stack.extend(every)

    budget = ctx.space.realign
    fit(adapter, net, realign_batches(ctx), steps=steps, lr=budget.lr, seed=seed,
        loss_fn=loss_fn, fused=ctx.fused_adamw)  # fmt: skip
    return net


def write_copy(truth: Path, out: Path, values: dict, full: dict, seconds: float) -> None:
    """The table with `values` as its zero-shot screen (zs_mase, zs_nll), `full` as the full
    model's, and `seconds` as the whole screen's cost."""
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads(truth.read_text())
    meta["screen_full"] |= {"mase": full["mase"], "nll": full["nll"]}
    meta["seconds"]["screen_all"] = round(seconds, 2)
    meta["screen_is"] = "supernet (scripts/supernet_screen.py)"
    (out / truth.name).write_text(json.dumps(meta, indent=1))
    with open(truth.with_suffix(".csv")) as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        keep = tuple(int(i) for i in row["keep"].split())
        if keep in values:
            row["zs_mase"], row["zs_nll"] = repr(values[keep]["mase"]), repr(values[keep]["nll"])
    with open(out / truth.with_suffix(".csv").name, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, help="write the table with this screen into DIR")
    args = parser.parse_args()
    try:
        meta, rows = load_truth(args.truth)
    except AutoPruneError as error:
        parser.exit(2, f"supernet_screen: {error}\n")
    if not meta["model"].startswith("moirai"):
        parser.exit(2, f"supernet_screen: Moirai tables only, not {meta['model']}\n")
    torch.set_num_threads(1)
    ctx = table_context(args.truth, meta)
    rows = [r for r in rows if r["mase"] is not None]
    keeps = [r["keep"] for r in rows]
    start = time.perf_counter()
    net = supernet(ctx, keeps, args.steps)
    trained = time.perf_counter() - start
    setting, series = ctx.setting, ctx.series
    val = series.eval_windows("val", setting.context_length, setting.horizon, SCREEN_WINDOWS)
    everything = tuple(range(ctx.adapter.num_layers))
    values = screen(
        ctx.adapter, net, val, setting.horizon, setting.patch_size, series.seasonality,
        [*keeps, everything],
    )  # fmt: skip
    seconds = time.perf_counter() - start
    for row in rows:
        row["sn_mase"] = values[row["keep"]]["mase"]
    measured = correlations(rows, ("zs_mase", "sn_mase", "r10_mase"))
    realigned = meta["reference"]["realigned"]["mase"]
    fulls = {"zs_mase": meta["screen_full"]["mase"], "sn_mase": values[everything]["mase"]}
    print(f"supernet: {args.steps} steps in {trained:.1f} s, screen and all {seconds:.1f} s")
    for name, c in measured.items():
        within = c["within_size_weighted_mean"]
        line = f"{name:9s} overall {c['overall']:+.2f}  within size {within:+.2f}"
        if name in fulls:
            ratio = [np.log(r[name] / fulls[name]) - np.log(r["mase"] / realigned) for r in rows]
            line += f"  log(screen/full-budget), normalised: sd {np.std(ratio):.3f}"
        print(line)
    if args.out:
        write_copy(args.truth, args.out, values, values[everything], seconds)


if __name__ == "__main__":
    main()
