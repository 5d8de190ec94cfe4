"""How far a warm start can go: the default strategy warm-started from what a finished study on
the source table knows, and from every keep set of the source table
(docs/search-efficiency.md).

Over two exhaustive tables of the same model, three figures:
- `alike`: how alike the two datasets rank keep sets, the Spearman rank correlation of their
  full-budget val MASE, over all keep sets and within each kept-layer count (size-weighted, as
  `bench truth` ranks its fidelities). A warm start transfers this ranking and no more.
- `compute_s_to`: compute seconds to 90%, 95% and 100% of the target's true hypervolume
  (median over seeds; null when most seeds never got there) of the cold default
  (`screened-mf`), the default warm-started as `bench replay --warm-start` does (the keep sets
  the default trained in WARM_TRIALS trials on the source), and warm-started from every keep
  set of the source table: more than any study there could tell, a ceiling for a prior mean
  learned on that source.
- with several seeds, `every_row_over_warm`: the last against the second in pairs, by
  `bench.replay.paired` as `scripts/paired_replays.py` reports it (per level, the geometric mean
  over seeds of the compute, seeds that needed less / more).

    python scripts/warm_ceiling.py studies/bench/2026-12-02/truth-moirai-tiny-8-etth2.json \
        studies/bench/2026-12-02/truth-moirai-tiny-8-etth1.json [--seeds 12 --noise 0.01]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna

from autoprune.bench.replay import (
    BUDGET,
    LEVELS,
    Table,
    compute_to,
    paired,
    replay_one,
    strategies,
)
from autoprune.bench.truth import correlations, load_truth
from autoprune.errors import AutoPruneError

KINDS = ("cold", "warm", "warm_every_row")


def alike(table: Table, source: Table) -> dict[str, float]:
    """Both tables hold the same keep sets in the same order (checked in `main`)."""
    rows = [
        {"kept": len(k), "mase": float(v), "source": float(w)}
        for k, v, w in zip(table.keeps, table.values[:, 0], source.values[:, 0], strict=True)
    ]
    found = correlations(rows, ("source",))["source"]
    return {
        "overall": round(found["overall"], 2),
        "within_size": round(found["within_size_weighted_mean"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="the target's exhaustive table")
    parser.add_argument("source", type=Path, help="the warm start's table, same model")
    parser.add_argument("--seeds", type=int, default=1, help="siblings (with --noise) or seeds")
    parser.add_argument("--noise", type=float, default=0.0, help="as `bench replay --noise`")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.seeds < 1 or not 0 <= args.noise < 1:
        parser.error("--seeds must be at least 1 and --noise in [0, 1)")
    if args.truth.resolve() == args.source.resolve():
        parser.error("the source must be another table than the target")
    try:
        table, source = (Table.load(*load_truth(p)) for p in (args.truth, args.source))
    except (AutoPruneError, OSError, ValueError) as error:
        parser.error(str(error))
    if table.meta["model"] != source.meta["model"] or table.keeps != source.keeps:
        parser.error("the two tables must be of the same model and search space")
    replayed = strategies(table, [source])
    known = {
        "cold": replayed["screened-mf"],
        "warm": replayed["screened-mf+warm"],
        "warm_every_row": strategies(table, [source], warm_trials=None)["screened-mf+warm"],
    }
    runs = {kind: {"curves": [], "compute_s": []} for kind in KINDS}
    seeds = args.seeds if args.noise else 1  # as measured, every kind here is deterministic
    for seed in range(seeds):
        sibling = table.perturbed(seed, args.noise)
        for kind, strategy in known.items():
            curve, compute, _, _ = replay_one(sibling, strategy, seed, BUDGET)
            runs[kind]["curves"].append(curve)
            runs[kind]["compute_s"].append(compute)
    result = {
        "alike": alike(table, source),
        "seeds": seeds,
        "compute_s_to": {
            str(round(100 * level)): {
                kind: compute_to(run["curves"], run["compute_s"], level)["median"]
                for kind, run in runs.items()
            }
            for level in LEVELS
        },
    }
    if seeds > 1:
        both = {"strategies": runs}  # one replay of the same siblings: paired with itself
        result["every_row_over_warm"] = paired(both, both, "warm", "warm_every_row")["levels"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
