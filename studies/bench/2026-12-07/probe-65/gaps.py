"""Stop 65: whether the drop-one keep sets themselves could tell when to trust the probe. Per
table (CSV), at each fidelity (zero-shot MASE, the 3- and 10-step rungs, the full budget): the
layer whose drop-one keep set is worst, and by how much it trails the next worst.

    python gaps.py TABLE.csv ...
"""

import sys

import numpy as np
from additive import drop_one


def main() -> None:
    for path in sys.argv[1:]:
        _, drop = drop_one(path)
        cells = []
        for fidelity in ("zs_mase", "r3_mase", "r10_mase", "mase"):
            v = np.array([float(r[fidelity]) for r in drop])
            order = np.argsort(-v)
            cells.append(f"{fidelity} layer {order[0]} {v[order[0]] / v[order[1]]:.3f}x")
        name = path.split("truth-")[1].removesuffix(".csv")
        print(f"{name:36s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
