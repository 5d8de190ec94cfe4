"""Stop 65: how well the drop-one probe ranks keep sets before the search. Per table (CSV), each
layer's drop-one keep set gives log(value) at a fidelity; a keep set is scored by the sum over
the layers it drops (additive in log). Spearman with the full-budget val MASE within equal size
(weighted by the sizes' counts) for the zero-shot screen (zs_nll), the probe at the 10-step and
3-step rungs and, as an oracle, at the full budget; then overall for the 10-step probe, and the
eight probes' 10-step rung cost (each its row's cost_r10, which includes its rung evaluations).

    python additive.py TABLE.csv ...
"""

import csv
import sys

import numpy as np
from scipy.stats import spearmanr


def within(rows: list[dict], key: str) -> float:
    rhos, weights = [], []
    for n in sorted({len(r["k"]) for r in rows}):
        members = [r for r in rows if len(r["k"]) == n]
        if len(members) >= 3:
            rho = spearmanr([r[key] for r in members], [float(r["mase"]) for r in members])[0]
            rhos.append(rho)
            weights.append(len(members))
    return float(np.average(rhos, weights=weights))


def drop_one(path: str) -> tuple[list[dict], list[dict]]:
    """A table's rows (CSV), each with its keep set as `k`, and per layer the row of the keep
    set that drops it alone."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["k"] = tuple(int(x) for x in r["keep"].split())
    layers = max(max(r["k"]) for r in rows) + 1
    by = {r["k"]: r for r in rows}
    return rows, [by[tuple(x for x in range(layers) if x != i)] for i in range(layers)]


def main() -> None:
    for path in sys.argv[1:]:
        rows, drop = drop_one(path)
        layers = len(drop)
        for r in rows:
            r["zs"] = float(r["zs_nll"])
        for fidelity in ("r10_mase", "r3_mase", "mase"):
            d = np.log([float(r[fidelity]) for r in drop])
            for r in rows:
                r[fidelity + "_probe"] = sum(d[i] for i in range(layers) if i not in r["k"])
        cost = sum(float(r["cost_r10"]) for r in drop)
        overall = spearmanr([r["r10_mase_probe"] for r in rows], [float(r["mase"]) for r in rows])
        name = path.split("truth-")[1].removesuffix(".csv")
        print(
            f"{name:36s} within size: screen {within(rows, 'zs'):+.2f}, probe r10 "
            f"{within(rows, 'r10_mase_probe'):+.2f}, r3 {within(rows, 'r3_mase_probe'):+.2f}, "
            f"full (oracle) {within(rows, 'mase_probe'):+.2f}; overall r10 {overall[0]:+.2f}; "
            f"probes {cost:.1f} s"
        )


if __name__ == "__main__":
    main()
