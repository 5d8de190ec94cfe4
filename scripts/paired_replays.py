"""Two replays of one table, compared seed by seed (docs/search-efficiency.md).

One deterministic trajectory per table says little, and medians over a handful of noisy
sibling tables (`autoprune bench replay --noise`) move with the draw. Replayed with the same
`--seeds` and `--noise`, seed s of both met the same sibling, so the ratio of the compute each
needed to reach a share of the true hypervolume is what a change to a strategy bought:

    python scripts/paired_replays.py BASE.json NEW.json [--strategy screened-mf] [--new-strategy S]
        [--from-seed N]

BASE and NEW may be one file (two strategies of one replay), the same replay run before and
after a code change, or replays of one table warm-started from different tables (or not).
Prints, per level (90, 95, 100% of the true hypervolume), the geometric mean over seeds of
NEW's compute over BASE's and on how many seeds NEW needed less / more (`--json`: the same as
JSON). `--from-seed N` pairs seeds N onward only: a change chosen on
the first N siblings (`--seeds 12`) is checked on fresh ones by replaying `--seeds 24`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autoprune.bench.replay import paired, read
from autoprune.errors import AutoPruneError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--strategy", default="screened-mf", help="BASE's strategy")
    parser.add_argument("--new-strategy", help="NEW's strategy (default: --strategy)")
    parser.add_argument("--from-seed", type=int, default=0, help="pair seeds N onward only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        result = paired(
            read(args.base), read(args.new), args.strategy, args.new_strategy, args.from_seed
        )
    except AutoPruneError as error:
        parser.exit(2, f"paired_replays: {error}\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    seeds = f", seeds {args.from_seed} onward" if args.from_seed else ""
    base_warm, new_warm = (f" (warm from {w})" if w else "" for w in result["warm_start_from"])
    print(
        f"{result['truth']} (noise {result['noise']}{seeds}): "
        f"{result['new']}{new_warm} against {result['base']}{base_warm}"
    )
    for level, r in result["levels"].items():
        ratio = "-" if r["geometric_mean_ratio"] is None else f"{r['geometric_mean_ratio']:.2f}x"
        print(
            f"  to {level}%: {ratio} compute (geometric mean over {r['seeds']} seeds), less on "
            f"{r['new_less']}, more on {r['new_more']}; {r['censored']} never reached it "
            "(budget counted)"
        )


if __name__ == "__main__":
    main()
