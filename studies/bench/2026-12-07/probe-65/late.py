"""Stop 65: why the rung stops so few Chronos-Bolt keep sets. Per table, d = log(full / rung)
(the 10-step rung to the full budget, keep sets not broken: full < 3x the full model) by the
number of layers kept (median), its spread overall and within sizes, and how many of the
default's first 60 re-alignments (as measured) its stop rule stopped at the rung.

    python late.py TABLE.json ...
"""

import sys

import numpy as np

from autoprune.bench.replay import BUDGET, Table, load_truth, replay_one, strategies


def default_charges(table: Table) -> list[tuple]:
    """The default's (`screened-mf`, seed 0, as measured) charges in order, as `replay_one`
    records them: (keep set or None for the screen, "screen" | "stopped" | "full", seconds)."""
    ledger: list[tuple] = []
    replay_one(table, strategies(table)["screened-mf"], 0, BUDGET, ledger)
    return ledger


def main() -> None:
    for path in sys.argv[1:]:
        table = Table.load(*load_truth(path))
        kept = np.array([len(k) for k in table.keeps])
        d = np.log(table.values[:, 0] / table.rungs[10])
        fine = table.values[:, 0] < 3
        sizes = range(1, table.num_layers)
        median = [np.median(d[(kept == n) & fine]) for n in sizes]
        within = np.sqrt(np.mean([np.var(d[(kept == n) & fine]) for n in sizes]))
        runs = [kind for keep, kind, _ in default_charges(table) if keep is not None][:60]
        name = path.split("truth-")[1].removesuffix(".json")
        print(
            f"{name:36s} median d by size {' '.join(f'{m:+.2f}' for m in median)} | spread "
            f"{d[fine].std():.2f}, within sizes {within:.2f} | stopped {runs.count('stopped')} "
            "of the first 60"
        )


if __name__ == "__main__":
    main()
