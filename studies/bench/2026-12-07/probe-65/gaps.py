"""Stop 65: whether the drop-one keep sets themselves could tell when to trust the probe. Per
table (CSV), at each fidelity (zero-shot MASE, the 3- and 10-step rungs, the full budget): the
layer whose drop-one keep set is worst, and by how much it trails the next worst.

    python gaps.py TABLE.csv ...
"""

import csv
import sys

import numpy as np


def main() -> None:
    for path in sys.argv[1:]:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        by = {tuple(int(x) for x in r["keep"].split()): r for r in rows}
        layers = max(max(k) for k in by) + 1
        cells = []
        for fidelity in ("zs_mase", "r3_mase", "r10_mase", "mase"):
            keeps = [tuple(x for x in range(layers) if x != i) for i in range(layers)]
            v = np.array([float(by[k][fidelity]) for k in keeps])
            order = np.argsort(-v)
            cells.append(f"{fidelity} layer {order[0]} {v[order[0]] / v[order[1]]:.3f}x")
        name = path.split("truth-")[1].removesuffix(".csv")
        print(f"{name:36s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
