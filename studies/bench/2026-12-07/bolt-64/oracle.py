"""The least compute any strategy could spend to reach 95% (and 100%) of a table's true
hypervolume: an oracle that knows the true front trains only the cheapest subset of its keep
sets that reaches the level, each at the full budget (as `bench replay` charges a
single-fidelity trial; the zero-shot screen not counted). Exact over every subset of the
front's keep sets inside the reference box (the others add no volume; up to 20 of them). Set
against a third of the best off-the-shelf sampler's compute to 95%, it says whether the issue's
target is within reach on the table at all.

    python studies/bench/2026-12-07/bolt-64/oracle.py TABLE.json [TABLE.json ...]
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from autoprune.bench.replay import Table, load_truth
from autoprune.pareto import hypervolume


def inside(table: Table) -> list[int]:
    """The rows of the true front inside the reference box: the only ones that add volume."""
    return [
        i
        for i, keep in enumerate(table.keeps)
        if keep in table.true_front and np.all(table.values[i] < table.reference)
    ]


def oracle(table: Table, level: float) -> tuple[float, list]:
    front = inside(table)
    if len(front) > 20:
        raise SystemExit(f"{len(front)} front keep sets inside the box: too many subsets")
    cost = table.costs["full"]
    best = (np.inf, [])
    for size in range(1, len(front) + 1):
        for subset in itertools.combinations(front, size):
            spent = float(cost[list(subset)].sum())
            if spent >= best[0]:
                continue
            hv = hypervolume(table.values[list(subset)], table.reference) / table.true_hv
            if hv >= level - 1e-12:
                best = (spent, [table.keeps[i] for i in subset])
    return best


def main() -> None:
    for path in sys.argv[1:]:
        table = Table.load(*load_truth(path))
        (c95, n95), (c100, n100) = oracle(table, 0.95), oracle(table, 1.0)
        print(
            f"{path}: front {len(table.true_front)} ({len(inside(table))} inside the box); "
            f"to 95% {c95:.1f} s ({len(n95)} keep sets: {' '.join(map(str, n95))}), "
            f"to 100% {c100:.1f} s ({len(n100)}); "
            f"mean full trial {table.costs['full'].mean():.2f} s"
        )


if __name__ == "__main__":
    main()
