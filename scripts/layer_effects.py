"""Each layer's effect on accuracy, as the zero-shot screen sees it and as re-alignment does
(docs/search-efficiency.md, "Tried since, not adopted").

A layer's effect: the mean log value of the keep sets without it less that of the keep sets
with it, within each kept-layer count, averaged over the counts (positive: keeping it helps).
Over every row of an exhaustive table, for the screen (zero-shot MASE) and for the full-budget
val MASE, and the Spearman rank correlation of the two over the layers: how much of which layers
matter the screen tells before anything is trained.

    python scripts/layer_effects.py studies/bench/2026-12-02/truth-moirai-tiny-8-etth2.json
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


def effects(keeps: list[tuple[int, ...]], values: np.ndarray, num_layers: int) -> np.ndarray:
    """Per layer, the mean over kept-layer counts of mean log value without it less with it."""
    logs = np.log(values)
    kept = np.array([len(k) for k in keeps])
    has = np.array([[layer in k for layer in range(num_layers)] for k in keeps])
    result = []
    for layer in range(num_layers):
        gaps = [
            logs[(kept == n) & ~has[:, layer]].mean() - logs[(kept == n) & has[:, layer]].mean()
            for n in np.unique(kept)
            if has[kept == n, layer].any() and (~has[kept == n, layer]).any()
        ]
        result.append(float(np.mean(gaps)) if gaps else float("nan"))
    return np.array(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, nargs="+")
    args = parser.parse_args()
    results = []
    for path in args.truth:
        try:
            table = Table.load(*load_truth(path))
        except AutoPruneError as error:
            parser.exit(2, f"layer_effects: {error}\n")
        if table.partial:
            parser.exit(2, f"layer_effects: {path} holds part of its space; it needs all of it\n")
        screen = effects(table.keeps, table.screen, table.num_layers)
        realigned = effects(table.keeps, table.values[:, 0], table.num_layers)
        results.append(
            {
                "truth": str(path),
                "screen": [round(v, 3) for v in screen],
                "realigned": [round(v, 3) for v in realigned],
                "spearman": round(float(stats.spearmanr(screen, realigned)[0]), 2),
            }
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
