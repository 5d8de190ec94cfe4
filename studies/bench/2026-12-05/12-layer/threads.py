"""How far another summation order moves a re-aligned keep set: random rows of a truth table
(built with 1 torch thread) re-aligned again with 2 threads, the same seed and batches.

    AUTOPRUNE_DATA_DIR=../shared/data python studies/bench/2026-12-05/12-layer/threads.py TABLE OUT
"""

import json
import sys

import numpy as np
import torch

from autoprune.bench.truth import load_truth, random_rows, table_context
from autoprune.objective import run_trial

table, out_path = sys.argv[1], sys.argv[2]
meta, rows = load_truth(table)
ctx = table_context(table, meta)
torch.set_num_threads(2)
out = []
for row in random_rows(rows, 16, 7):
    _, record = run_trial(ctx, row["keep"])
    ratio = float(np.log(record["mase"] / row["mase"]))
    out.append(
        {
            "keep": list(row["keep"]),
            "stored": row["mase"],
            "two_threads": record["mase"],
            "log_ratio": ratio,
        }
    )
    print(out[-1], flush=True)
ratios = np.array([o["log_ratio"] for o in out])
summary = {
    "table": table,
    "rows": len(out),
    "sd_log_ratio": float(ratios.std(ddof=1)),
    "median_abs": float(np.median(np.abs(ratios))),
    "max_abs": float(np.abs(ratios).max()),
}
print(json.dumps(summary))
with open(out_path, "w") as fh:
    json.dump({"summary": summary, "rows": out}, fh, indent=1)
