"""The default study's trial count, replayed: a fixed DEFAULT_TRIALS, the product's rule (on
while the front is still growing, to at most DEFAULT_TRIALS_MAX: `search.run.growing_target`),
and a fixed DEFAULT_TRIALS_MAX.

    python scripts/default_trials.py REPLAY.json|FOLDER ... [--strategy screened-mf] [--json]

Reads `autoprune bench replay` results (a folder: its replay-*.json files): each seed's share of
the true hypervolume after each keep set it trained. A study's own hypervolume is that share
times the true hypervolume (with --noise, the sibling's values are the study's), so the rule
stops where the product would. A replay ends once it holds the true front; its curve is then
held flat (nothing more can be gained). Prints per table: the seeds that went on, and the
median share of the true hypervolume after each of the three counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from autoprune.bench.replay import read, replay_files
from autoprune.search.options import DEFAULT_TRIALS, DEFAULT_TRIALS_MAX
from autoprune.search.run import growing_target


def rule_stops(curve: list[float]) -> int:
    """Trained keep sets after which the product's rule stops on this curve: DEFAULT_TRIALS,
    then on as `search` goes on (`search.run.growing_target`)."""
    held = curve + [curve[-1]] * max(DEFAULT_TRIALS_MAX - len(curve), 0)
    trials = DEFAULT_TRIALS
    while more := growing_target(held[:trials]):
        trials = more
    return trials


def table_row(replay: dict, strategy: str) -> dict:
    curves = replay["strategies"][strategy]["curves"]
    stops = [rule_stops(c) for c in curves]

    def share(curve: list[float], trials: int) -> float:
        return curve[min(trials, len(curve)) - 1]

    return {
        "table": Path(replay["truth"]).name,
        "noise": replay["noise"],
        "seeds": len(curves),
        "went_on": sum(s > DEFAULT_TRIALS for s in stops),
        "trials": stops,
        "median_share": {
            f"fixed {DEFAULT_TRIALS}": float(np.median([share(c, DEFAULT_TRIALS) for c in curves])),
            "the rule": float(np.median([share(c, s) for c, s in zip(curves, stops, strict=True)])),
            f"fixed {DEFAULT_TRIALS_MAX}": float(
                np.median([share(c, DEFAULT_TRIALS_MAX) for c in curves])
            ),
        },
        "mean_trials": float(np.mean(stops)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="replay JSON files or folders")
    parser.add_argument("--strategy", default="screened-mf", help="default: screened-mf")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    rows = [
        table_row(replay, args.strategy)
        for replay in map(read, replay_files(args.paths))
        if args.strategy in replay["strategies"]
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    heads = list(rows[0]["median_share"]) if rows else []
    print(
        f"| table | noise | seeds going on past {DEFAULT_TRIALS} | mean trials with the rule | "
        + " | ".join(f"median share, {h}" for h in heads)
        + " |"
    )
    print("|---" * (4 + len(heads)) + "|")
    for r in rows:
        shares = " | ".join(f"{v:.3f}" for v in r["median_share"].values())
        print(
            f"| {r['table']} | {r['noise']:g} | {r['went_on']} of {r['seeds']} | "
            f"{r['mean_trials']:.1f} | {shares} |"
        )


if __name__ == "__main__":
    main()
