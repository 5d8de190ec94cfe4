"""How much re-aligning the same keep set with another seed moves its validation MASE
(docs/search-efficiency.md): the noise `autoprune bench replay --noise` stands in for.

Random re-aligned rows of a ground-truth table are pruned and re-aligned again with seeds
0..N-1 (the table's budget, data and windows), and each keep set's spread is the standard
deviation of log(val MASE) over the seeds. Torch's default thread count unless --threads:
float-summation order alone changes some results.

    python scripts/seed_spread.py studies/bench/truth-moirai-tiny-8-etth1.json --rows 6 --seeds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from autoprune.bench.truth import load_truth, random_rows, table_context
from autoprune.objective import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="truth-<model>-<dataset>.json")
    parser.add_argument("--rows", type=int, default=6, help="random re-aligned rows")
    parser.add_argument("--seeds", type=int, default=5, help="re-alignment seeds per row")
    parser.add_argument("--pick", type=int, default=1, help="seed of the row draw")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    meta, table = load_truth(args.truth)
    ctx = table_context(args.truth, meta)
    result = []
    for row in random_rows(table, args.rows, args.pick):
        values = []
        for seed in range(args.seeds):
            values.append(run_trial(dataclasses.replace(ctx, seed=seed), row["keep"])[1]["mase"])
        spread = float(np.std(np.log(values), ddof=1))
        result.append({"keep": list(row["keep"]), "table": row["mase"], "seeds": values})
        result[-1]["log_sd"] = round(spread, 4)
        print(json.dumps(result[-1]), flush=True)
    spreads = [r["log_sd"] for r in result]
    print(json.dumps({"median_log_sd": float(np.median(spreads)), "max_log_sd": max(spreads)}))


if __name__ == "__main__":
    main()
