"""The search-efficiency targets, read off replays (README, "Search efficiency").

    python scripts/targets.py REPLAY.json|FOLDER ... [--yardstick REPLAY.json|FOLDER]...
        [--against gp] [--json]

Reads `autoprune bench replay` results (a folder: its replay-*.json files, not its
subfolders) and prints, per table and noise level, the default strategy's (`screened-mf`)
compute to 95% of the true hypervolume against the best off-the-shelf Optuna sampler's among
those replayed, or `--against` one of them (target: at most one third), its compute to 100%
against the same (at most as much) and, from warm-started replays, the warm-started default's
to 95% (at most one fifth).
GPSampler is replayed only on request, so pass its replay too. `--yardstick` (once per
file or folder) reads replays for their off-the-shelf samplers alone: an earlier day's, beside a
replay of today's default. A median most seeds never reached is a bound ("> 310 s"), and so is
any ratio made with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autoprune.bench.replay import read, replay_files
from autoprune.bench.targets import markdown, targets, yardstick
from autoprune.errors import AutoPruneError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="replay JSON files or folders")
    parser.add_argument(
        "--yardstick",
        type=Path,
        action="append",
        default=[],
        help="a replay JSON file or folder read for its off-the-shelf samplers alone (repeatable)",
    )
    parser.add_argument(
        "--against", help="compare with this sampler (e.g. gp), not the best of those replayed"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        replays = [(str(f), yardstick(read(f))) for f in replay_files(args.yardstick)]
        replays += [(str(f), read(f)) for f in replay_files(args.paths)]
        rows = targets(replays, args.against)
    except AutoPruneError as error:
        parser.exit(2, f"targets: {error}\n")
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
