"""The search-efficiency targets, read off replays (README, "Search efficiency").

    python scripts/targets.py REPLAY.json|FOLDER ... [--against gp] [--json]

Reads `autoprune bench replay` results (a folder: its replay-*.json files, not its
subfolders) and prints, per table and noise level, the default strategy's (`screened-mf`)
compute to 95% of the true hypervolume against the best off-the-shelf Optuna sampler's among
those replayed, or `--against` one of them (target: at most one third), its compute to 100%
against the same (at most as much) and, from warm-started replays, the warm-started default's
to 95% (at most one fifth).
GPSampler is replayed only on request, so pass its replay too. A median most seeds never
reached is a bound ("> 310 s"), and so is any ratio made with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autoprune.bench.replay import read
from autoprune.bench.targets import markdown, targets
from autoprune.errors import AutoPruneError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="replay JSON files or folders")
    parser.add_argument(
        "--against", help="compare with this sampler (e.g. gp), not the best of those replayed"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = []
    for path in args.paths:
        found = sorted(path.glob("replay-*.json")) if path.is_dir() else [path]
        if not found:
            parser.exit(2, f"targets: no replay-*.json in {path}\n")
        files += [f for f in found if f.resolve() not in {g.resolve() for g in files}]
    try:
        rows = targets([(str(path), read(path)) for path in files], args.against)
    except AutoPruneError as error:
        parser.exit(2, f"targets: {error}\n")
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
