"""Where a strategy's compute to a share of the true hypervolume went, on an exhaustive table
(docs/search-efficiency.md).

A replay charges the zero-shot screen once (if the strategy screens), the rung of every keep set
it stops and the full re-alignment of every keep set it trains. Up to the trial at which the
strategy reaches `--level` of the table's true hypervolume, this splits those seconds into:
- `screen`: the zero-shot screen;
- `stopped`: keep sets stopped at the rung;
- `true_front`: full re-alignments of keep sets on the table's true front that hold volume;
- `off_front`: full re-alignments of the other keep sets below the hypervolume's reference point
  (they may have held volume for a while);
- `above_reference`: full re-alignments of keep sets whose full-budget accuracy is at or above
  the reference point (1.1x the full model's error): they cannot add any volume, whatever else
  was trained (a true front may hold one: the cheapest keep set is never dominated).
`without_above_reference_s` is the compute to the level less the full re-alignments of the last
kind: plain arithmetic on the same proposals, not a replay of a strategy that skips them (one that
did would learn less and propose otherwise). With one seed, `off_front_keep_sets` lists the
`off_front` keep sets with how much worse than the best keep set of their size they are (%).

    python scripts/compute_breakdown.py studies/bench/2026-12-02/truth-moirai-tiny-8-etth2.json \
        [--strategy screened-mf] [--level 0.95] [--seeds 12 --noise 0.01]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna

from autoprune.bench.replay import BUDGET, Table, replay_one, strategies, unavailable
from autoprune.bench.truth import load_truth
from autoprune.errors import AutoPruneError

KINDS = ("screen", "stopped", "true_front", "off_front", "above_reference")


def median(values) -> float:
    return round(float(np.median(list(values))), 1)


def breakdown(table: Table, strategy, seed: int, level: float) -> dict | None:
    """One seed's split of its compute to `level` (None if it never got there), from the
    charges `replay_one` made."""
    ledger: list = []
    curve, compute, _, _ = replay_one(table, strategy, seed, BUDGET, ledger)
    hit = next((i for i, v in enumerate(curve) if v >= level - 1e-9), None)
    if hit is None:
        return None
    row = {k: i for i, k in enumerate(table.keeps)}
    best = {}  # per size, the best full-budget accuracy of the table
    for keep, value in zip(table.keeps, table.values[:, 0], strict=True):
        best[len(keep)] = min(value, best.get(len(keep), np.inf))
    off_front = []
    seconds = dict.fromkeys(KINDS, 0.0)
    counts = dict.fromkeys(KINDS, 0)
    trained = 0
    for keep, charge, cost in ledger:
        if charge == "full":
            i = row[keep]
            if not np.all(table.values[i] < table.reference):
                charge = "above_reference"  # the true front may hold it, but with no volume
            else:
                charge = "true_front" if keep in table.true_front else "off_front"
            if charge == "off_front":
                gap = 100 * (table.values[i, 0] / best[len(keep)] - 1)
                off_front.append({"keep": " ".join(map(str, keep)), "gap_pct": round(gap, 1)})
            trained += 1
        seconds[charge] += cost
        counts[charge] += 1
        if trained == hit + 1:
            break  # the full re-alignment that reached the level
    return {
        "compute_s": compute[hit],
        "seconds": seconds,
        "trials": {k: counts[k] for k in KINDS[1:]},
        "without_above_reference_s": compute[hit] - seconds["above_reference"],
        "off_front_keep_sets": sorted(off_front, key=lambda k: k["gap_pct"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="an exhaustive table (`autoprune bench truth`)")
    parser.add_argument("--strategy", default="screened-mf", help="as `bench replay --strategy`")
    parser.add_argument("--level", type=float, default=0.95, help="share of the true hypervolume")
    parser.add_argument("--seeds", type=int, default=1, help="siblings (with --noise) or seeds")
    parser.add_argument("--noise", type=float, default=0.0, help="as `bench replay --noise`")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.seeds < 1 or not 0 <= args.noise < 1 or not 0 < args.level <= 1:
        parser.error("--seeds must be at least 1, --noise in [0, 1) and --level in (0, 1]")
    try:
        table = Table.load(*load_truth(args.truth))
    except (AutoPruneError, OSError, ValueError) as error:
        parser.error(str(error))
    known = strategies(table)
    if args.strategy not in known:
        parser.error(unavailable(args.strategy, table, None, known))
    found = []
    for seed in range(args.seeds):
        sibling = table.perturbed(seed, args.noise)
        found.append(breakdown(sibling, known[args.strategy], seed, args.level))
    reached = [f for f in found if f is not None]
    result: dict = {
        "strategy": args.strategy,
        "level": args.level,
        "reached": f"{len(reached)}/{len(found)}",
    }
    if reached:  # medians over the seeds that reached the level
        result |= {
            "compute_s": median(f["compute_s"] for f in reached),
            "seconds": {k: median(f["seconds"][k] for f in reached) for k in KINDS},
            "trials": {k: median(f["trials"][k] for f in reached) for k in KINDS[1:]},
            "without_above_reference_s": median(f["without_above_reference_s"] for f in reached),
        }
        if len(found) == 1:
            result["off_front_keep_sets"] = reached[0]["off_front_keep_sets"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
