"""How well the latency profile predicts a keep set's measured latency: the per-group fit
(today's `fit_latency_profile`) against the one per-layer cost over prefixes it replaced at
stop 62, both measured in one run on one table's model and setting (CPU, its batch of 32).

    python studies/bench/2026-12-07/bolt-62/latency_fit.py TABLE.json [--keep-sets 24] [--threads 1]

Prints JSON: both profiles, and for random keep sets of the table's space the measured latency
(median of 7 timed passes) and each profile's prediction, with the mean absolute error in %.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from scipy.optimize import nnls

from autoprune.bench.truth import load_truth, table_context
from autoprune.objective import (
    LATENCY_WARMUP,
    _forward_ms,
    fit_latency_profile,
    measure_latency,
    predict_latency,
)


def prefix_profile(ctx, rounds: int = 15) -> dict:
    """The profile as fitted until stop 62: one per-layer cost over the prefixes range(k)."""
    layers = ctx.adapter.num_layers
    depths = sorted({1, max(1, layers // 4), max(1, layers // 2), max(1, 3 * layers // 4), layers})
    models = {k: ctx.adapter.prune(range(k)) for k in depths}
    samples = {k: [] for k in depths}
    for model in models.values():
        for _ in range(LATENCY_WARMUP):
            _forward_ms(ctx, model)
    for _ in range(rounds):
        for k, model in models.items():
            samples[k].append(_forward_ms(ctx, model))
    ks = np.array(depths, dtype=float)
    ms = np.array([np.median(samples[k]) for k in depths])
    (fixed, per_layer), _ = nnls(np.column_stack([np.ones_like(ks), ks]), ms)
    r2 = 1 - np.sum((ms - fixed - per_layer * ks) ** 2) / np.sum((ms - ms.mean()) ** 2)
    return {"fixed_ms": float(fixed), "per_layer_ms": float(per_layer), "r2": float(r2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("table")
    parser.add_argument("--keep-sets", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    meta, rows = load_truth(args.table)
    ctx = table_context(args.table, meta)
    old, new = prefix_profile(ctx), fit_latency_profile(ctx)
    rng = np.random.default_rng(0)
    picked = [rows[i]["keep"] for i in sorted(rng.choice(len(rows), args.keep_sets, False))]
    measured = []
    for keep in picked:
        ms = measure_latency(ctx, ctx.adapter.prune(keep))
        measured.append(
            {
                "keep": list(keep),
                "measured_ms": round(ms, 2),
                "per_group_ms": round(predict_latency(new, keep), 2),
                "one_cost_ms": round(predict_latency(old, keep), 2),
            }
        )
        print(measured[-1], file=sys.stderr, flush=True)

    def error(key: str) -> float:
        return float(np.mean([abs(m[key] / m["measured_ms"] - 1) for m in measured]) * 100)

    print(
        json.dumps(
            {
                "table": args.table,
                "threads": args.threads,
                "one_cost_profile": old,
                "per_group_profile": new,
                "mean_abs_error_pct": {
                    "per_group": error("per_group_ms"),
                    "one_cost": error("one_cost_ms"),
                },
                "keep_sets": measured,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
