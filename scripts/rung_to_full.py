"""From the rung to the full budget: does a keep set still improve on the objective itself, and
does the rung's order hold? (docs/search-efficiency.md)

For every keep set of the given sizes in an exhaustive table, re-align it as the table did (its
budget, seed and data, stopped at the stop rung, 10 of 30 steps) and measure there: the rung
fidelity (mean-forecast MASE on the screen's 64 validation windows, what the stop rule reads),
the same on the validation split's windows the objective reads (`wide`), and the objective
itself (the sampled val MASE). Per size: how many keep sets the rest of the budget improved on
the objective (the table's full-budget value against the objective at the rung), the median
gap between the objective and the rung fidelity at the rung, and each measure's Spearman rank
correlation with the full budget within the size. One torch thread, ~4 s a keep set.

    python scripts/rung_to_full.py studies/bench/2026-12-02/truth-moirai-tiny-8-etth1.json \
        --sizes 5,6,7
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from autoprune.bench.truth import load_truth, table_context
from autoprune.multifidelity import stop_rung
from autoprune.objective import StoppedAtRung, realign, rung_fidelity, rung_steps, val_metrics

MEASURES = ("rung", "wide", "objective")


def at_rung(ctx, wide, keep: tuple[int, ...], steps: int) -> dict[str, float]:
    model = ctx.adapter.prune(keep).to(ctx.device)
    found: dict[str, float] = {}

    def go_on(done: int, value: float) -> bool:
        if done < steps:
            return True
        model.eval()
        found["rung"] = value
        found["wide"] = rung_fidelity(ctx, model, wide)
        found["objective"] = val_metrics(ctx, model)["mase"]
        return False

    with contextlib.suppress(StoppedAtRung):
        realign(ctx, model, {}, go_on)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="an exhaustive table (autoprune bench truth)")
    parser.add_argument("--sizes", default="5,6,7", help="kept-layer counts, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    meta, table = load_truth(args.truth)
    sizes = {int(s) for s in args.sizes.split(",")}
    ctx = table_context(args.truth, meta)
    setting = ctx.setting
    wide = [
        s.eval_windows("val", setting.context_length, setting.horizon, ctx.space.val_windows)
        for s in ctx.datasets
    ]
    steps = stop_rung(rung_steps(ctx.space.realign.steps))
    rows = []
    for row in table:
        if len(row["keep"]) in sizes and row["mase"] is not None:
            found = at_rung(ctx, wide, row["keep"], steps)
            rows.append({"keep": list(row["keep"]), "full": row["mase"], **found})
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for size in sorted(sizes):
        group = [r for r in rows if len(r["keep"]) == size]
        if len(group) < 3:
            continue
        full = [r["full"] for r in group]
        summary[str(size)] = {
            "keep_sets": len(group),
            "improved_after_rung": sum(r["full"] < r["objective"] for r in group),
            "objective_over_rung": round(
                float(np.median([r["objective"] / r["rung"] for r in group])), 4
            ),
            "spearman": {
                m: round(float(stats.spearmanr([r[m] for r in group], full).statistic), 2)
                for m in MEASURES
            },
        }
    print(json.dumps({"rung_steps": steps, "by_size": summary}, indent=2))


if __name__ == "__main__":
    main()
