"""How well the default surrogate ranks keep sets it has not trained, against how well it must
(docs/search-efficiency.md).

Over an exhaustive table, two figures:
- `ranking`: the default sampler's surrogate (`fit_surrogate`, the same kernel, screen and
  hyperparameter grid) fitted to n keep sets drawn at random with their full-budget val MASE;
  the Spearman rank correlation of its posterior mean with the truth over the keep sets not
  drawn, within each kept-layer count (size-weighted, as `bench truth` ranks its fidelities),
  mean and spread over draws.
- `hv_at_rank`: the share of the true hypervolume held by one keep set per size, the r-th best
  of its size: what a search reaches if it never finds better than the r-th of each size.
- `best_rank`: per size, where each cheaper fidelity the table holds (the zero-shot screen, the
  rungs) puts the size's best keep set at the full budget (1: first of its size); training a
  size's keep sets in that fidelity's order finds its best after that many.

    python scripts/surrogate_ranking.py studies/bench/truth-moirai-tiny-8-etth1.json \
        [--trained 15,30,50] [--draws 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from autoprune.bench.replay import Table
from autoprune.bench.truth import correlations, load_truth
from autoprune.errors import AutoPruneError
from autoprune.multifidelity import Pool, fit_surrogate
from autoprune.pareto import hypervolume, non_dominated

MIN_LEFT = 4  # keep sets a draw leaves untrained, at least


def ranking(table: Table, pool: Pool, n: int, draws: int) -> dict[str, float]:
    truth, kept = table.values[:, 0], pool.layers.sum(1)
    rhos = []
    for draw in range(draws):
        seen = np.random.default_rng(draw).choice(len(truth), n, replace=False)
        posterior = fit_surrogate(pool, {int(i): float(truth[i]) for i in seen})
        rest = np.setdiff1d(np.arange(len(truth)), seen)
        rows = [{"kept": kept[i], "mase": truth[i], "predicted": posterior.mean[i]} for i in rest]
        rhos.append(correlations(rows, ("predicted",))["predicted"]["within_size_weighted_mean"])
    return {"mean": round(float(np.mean(rhos)), 2), "sd": round(float(np.std(rhos)), 2)}


def hv_at_rank(table: Table, rank: int) -> float:
    kept = np.array([len(k) for k in table.keeps])
    chosen = []
    for k in np.unique(kept):
        rows = np.flatnonzero(kept == k)
        ordered = rows[np.argsort(table.values[rows, 0], kind="stable")]
        chosen.append(ordered[min(rank, len(ordered)) - 1])
    points = table.values[chosen]
    share = hypervolume(points[non_dominated(points)], table.reference) / table.true_hv
    return round(float(share), 3)


def best_rank(table: Table) -> dict[str, list[int]]:
    kept = np.array([len(k) for k in table.keeps])
    sizes = [int(k) for k in np.unique(kept) if np.sum(kept == k) > 1]
    fidelities = {"screen": table.screen, **{f"rung {s}": v for s, v in table.rungs.items()}}
    result: dict[str, list[int]] = {"size": sizes, "keep sets": []}
    for k in sizes:
        rows = np.flatnonzero(kept == k)
        result["keep sets"].append(len(rows))
        best = rows[np.argmin(table.values[rows, 0])]
        for name, fidelity in fidelities.items():
            ahead = int(np.sum(fidelity[rows] < fidelity[best]))
            result.setdefault(name, []).append(ahead + 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="an exhaustive table (autoprune bench truth)")
    parser.add_argument("--trained", default="15,30,50", help="keep sets drawn, comma-separated")
    parser.add_argument("--draws", type=int, default=12)
    args = parser.parse_args()
    try:
        table = Table.load(*load_truth(args.truth))
        sizes = [int(n) for n in args.trained.split(",")]
    except (AutoPruneError, ValueError) as error:
        parser.exit(2, f"surrogate_ranking: {error}\n")
    if not sizes or min(sizes) < 2 or max(sizes) > len(table.keeps) - MIN_LEFT or args.draws < 1:
        parser.exit(
            2,
            f"surrogate_ranking: --trained must lie in 2..{len(table.keeps) - MIN_LEFT}"
            " and --draws be at least 1\n",
        )
    pool = Pool.build(table.keeps, table.values[:, 1:], table.screen, table.num_layers)
    result = {
        "table": str(args.truth),
        "rows": len(table.keeps),
        "ranking": {str(n): ranking(table, pool, n, args.draws) for n in sizes},
        "hv_at_rank": {str(r): hv_at_rank(table, r) for r in (1, 2, 3, 5)},
        "best_rank": best_rank(table),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
