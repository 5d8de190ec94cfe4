"""The zero-shot screen of every keep set of a table, as `bench truth` screens them today, timed
and ranked against the table's full-budget val MASE beside the table's own screen. On a table
built before Chronos-Bolt's screen was one pass, it measures the one-pass screen on the same
model, data and windows.

    python studies/bench/2026-12-07/bolt-63/one_pass.py TABLE.json [--threads 1]

Prints JSON: the seconds of the whole screen (every keep set and the full model, as
`bench truth`'s `screen_all`), the table's, and each screen's Spearman with val MASE (overall,
within equal size).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from autoprune.bench.truth import correlations, load_truth, table_context
from autoprune.screen import SCREEN_WINDOWS, screen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    meta, rows = load_truth(args.table)
    ctx = table_context(args.table, meta)
    setting = ctx.setting
    windows = ctx.series.eval_windows(
        "val", setting.context_length, setting.horizon, SCREEN_WINDOWS
    )
    everything = tuple(range(ctx.adapter.num_layers))
    keep_sets = [*sorted(r["keep"] for r in rows), everything]
    start = time.perf_counter()
    screened = screen(
        ctx.adapter,
        ctx.adapter.model,
        windows,
        setting.horizon,
        setting.patch_size,
        ctx.series.seasonality,
        keep_sets,
    )
    seconds = time.perf_counter() - start
    for row in rows:
        row["op_nll"] = screened[row["keep"]]["nll"]
        row["op_mase"] = screened[row["keep"]]["mase"]
    ranks = correlations(rows, ("zs_nll", "zs_mase", "op_nll", "op_mase"))
    print(
        json.dumps(
            {
                "table": args.table,
                "steps": ctx.adapter.screen_steps(setting.horizon),
                "horizon": setting.horizon,
                "screen_s": round(seconds, 1),
                "table_screen_s": meta["seconds"]["screen_all"],
                "spearman": {
                    name: {
                        "overall": round(v["overall"], 3),
                        "within_size": round(v["within_size_weighted_mean"], 3),
                    }
                    for name, v in ranks.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
