"""How well a rung predicts the full budget, under two calibrations (docs/search-efficiency.md).

The stop rule predicts a keep set's full-budget val MASE from its rung value through a
calibration learned from the keep sets seen at both. Over every row of an exhaustive table:
the shift-only calibration (log full = log rung + d, the default's `Calibration`) against a
fitted line (log full = a + b log rung): residual spread and slope over all rows, then the mean
held-out log-likelihood of each when learned from n random rows (the default's `Calibration`
itself, Gaussian with its widened spread, against the line's Student-t prediction interval),
median over draws. Then per kept-layer count: the mean and spread of d = log full - log rung,
the share of keep sets that the rest of the budget made worse (full above rung), and the rung's
Spearman rank correlation with the full budget within that size.

    python scripts/rung_calibration.py studies/bench/truth-moirai-tiny-8-etth1.json [--rung 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from autoprune.bench.replay import Table
from autoprune.bench.truth import load_truth
from autoprune.errors import AutoPruneError
from autoprune.multifidelity import MIN_PAIRS, Calibration


def held_out(x: np.ndarray, y: np.ndarray, n: int, draws: int, rng) -> dict[str, float]:
    shift, line = [], []
    for _ in range(draws):
        seen = rng.choice(len(x), n, replace=False)
        rest = np.setdiff1d(np.arange(len(x)), seen)
        default = Calibration.fit(list(zip(np.exp(x[seen]), np.exp(y[seen]), strict=True)))
        shift.append(stats.norm.logpdf(y[rest], x[rest] + default.mu, default.sigma).mean())
        slope, intercept = np.polyfit(x[seen], y[seen], 1)
        scale = np.sqrt(((y[seen] - intercept - slope * x[seen]) ** 2).sum() / (n - 2))
        centre, spread = x[seen].mean(), ((x[seen] - x[seen].mean()) ** 2).sum()
        width = scale * np.sqrt(1 + 1 / n + (x[rest] - centre) ** 2 / spread)
        line.append(stats.t.logpdf(y[rest], n - 2, intercept + slope * x[rest], width).mean())
    return {"shift": round(float(np.median(shift)), 3), "line": round(float(np.median(line)), 3)}


def by_size(table: Table, x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    kept = np.array([len(k) for k in table.keeps])
    d_all = y + np.log(table.meta["reference"]["realigned"]["mase"]) - x  # both val MASE
    result = {}
    for k in np.unique(kept):
        rows, d = kept == k, d_all[kept == k]
        rho = stats.spearmanr(x[rows], y[rows]).statistic if rows.sum() > 2 else np.nan
        result[str(k)] = {
            "rows": int(rows.sum()),
            "d_mean": round(float(d.mean()), 3),
            "d_sd": round(float(d.std()), 3),
            "worse_after_rung": round(float((d > 0).mean()), 2),
            "spearman": None if np.isnan(rho) else round(float(rho), 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path)
    parser.add_argument("--rung", type=int, default=10, help="rung (re-alignment steps)")
    parser.add_argument("--pairs", type=int, nargs="+", default=[4, 6, 8, 12, 20])
    parser.add_argument("--draws", type=int, default=300)
    args = parser.parse_args()
    if min(args.pairs) < MIN_PAIRS:
        parser.exit(2, f"rung_calibration: the default calibration needs {MIN_PAIRS}+ pairs\n")
    try:
        table = Table.load(*load_truth(args.truth))
    except AutoPruneError as error:
        parser.exit(2, f"rung_calibration: {error}\n")
    if args.rung not in table.rungs:
        parser.exit(2, f"rung_calibration: the table has rungs {sorted(table.rungs)} only\n")
    x, y = np.log(table.rungs[args.rung]), np.log(table.values[:, 0])
    slope, intercept = np.polyfit(x, y, 1)
    rng = np.random.default_rng(0)
    result = {
        "truth": str(args.truth),
        "rung": args.rung,
        "rows": len(x),
        "shift_residual_sd": round(float((y - x).std()), 4),
        "line_residual_sd": round(float((y - intercept - slope * x).std()), 4),
        "line_slope": round(float(slope), 3),
        "held_out_loglik": {str(n): held_out(x, y, n, args.draws, rng) for n in args.pairs},
        "by_size": by_size(table, x, y),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
