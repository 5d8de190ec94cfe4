"""Stop 65: the default's first 70 charges on a table, as measured (each keep set's 10-step rung
over the full model's screen value, its full-budget accuracy over the full model's, and what it
cost), then how many of its first 60 full re-alignments ended within 1.25x and under 1x of the
full model, and the rung range of its two-layer keep sets with the true front's among them.

    python ledger.py TABLE.json
"""

import sys

import numpy as np
from late import default_charges

from autoprune.bench.replay import Table, load_truth


def main() -> None:
    table = Table.load(*load_truth(sys.argv[1]))
    ledger = default_charges(table)
    row = {k: i for i, k in enumerate(table.keeps)}
    rung = table.rungs[10] / table.meta["screen_full"]["mase"]
    spent, trained = 0.0, []
    for keep, kind, seconds in ledger[:70]:
        spent += seconds
        if keep is None:
            print(f"screen {seconds:.1f} s")
            continue
        i = row[keep]
        trained += [i] if kind == "full" else []
        print(
            f"{kind:8s} {str(keep):18s} rung {rung[i]:6.2f}  full {table.values[i, 0]:6.2f}  "
            f"{seconds:5.2f} s  spent {spent:6.1f} s  trained {len(trained)}"
        )
    first = [row[keep] for keep, kind, _ in ledger if kind == "full"][:60]
    full = table.values[first, 0]
    within, under = np.sum(full <= 1.25), np.sum(full < 1)
    print(f"of the first 60 trained: {within} within 1.25x, {under} under 1x")
    pairs = [i for i, k in enumerate(table.keeps) if len(k) == 2]
    front = [i for i in pairs if table.keeps[i] in table.true_front]
    print(
        f"two-layer keep sets at the rung: {rung[pairs].min():.2f}-{rung[pairs].max():.2f}x; "
        + ", ".join(f"{table.keeps[i]} {rung[i]:.2f}x (front)" for i in front)
    )


if __name__ == "__main__":
    main()
