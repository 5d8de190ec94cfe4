"""Stop 66: per Chronos-Bolt table, compute to 95% of the true hypervolume (median over seeds;
"> x" where most seeds never got there) of the default (`screened-mf`) and of the best
off-the-shelf Optuna sampler (random, TPE, NSGA-II, GPSampler), as measured and under noise
0.01, searching the whole space (`--full` folders) and the keep sets that keep the last
decoder block (`--kept` folders); then the ratios and their geometric means.

    python compare.py --full FOLDER... --kept FOLDER...
"""

import argparse
import json
from pathlib import Path

import numpy as np

from autoprune.bench.targets import DEFAULT, Compute, best_of, ratio


def read(folders: list[Path]) -> dict:
    """(table, noise) -> {strategy: its run}; a later folder's run of a strategy wins."""
    found: dict = {}
    for folder in folders:
        for path in sorted(folder.glob("replay-*.json")):
            replay = json.loads(path.read_text())
            table = Path(replay["truth"]).stem.split("tiny-8-")[1]
            found.setdefault((table, replay["noise"]), {}).update(replay["strategies"])
    return found


def show(nc) -> str:
    return "-" if nc is None else f"{nc[0]} {nc[1]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", type=Path, nargs="+", required=True)
    parser.add_argument("--kept", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    full, kept = read(args.full), read(args.kept)
    ratios: dict = {}
    for noise in (0.0, 0.01):
        print(f"\n{'as measured' if not noise else 'under noise 0.01'}: compute to 95%")
        print(
            f"{'table':16s}{'yardstick, all':>24s}{'yardstick, kept':>24s}{'default, all':>16s}"
            f"{'default, kept':>16s}{'kept/yard all':>15s}{'kept/yard kept':>15s}{'kept/all':>10s}"
        )
        for table in sorted({t for t, n in kept if n == noise}):
            a, k = full.get((table, noise), {}), kept.get((table, noise), {})
            ya, yk = best_of(a), best_of(k)
            da, dk = (Compute.of(r[DEFAULT], 0.95) if DEFAULT in r else None for r in (a, k))
            cells = []
            for name, num, den in (
                ("vs yardstick, all", dk, ya and ya[1]),
                ("vs yardstick, kept", dk, yk and yk[1]),
                ("vs default, all", dk, da),
            ):
                if num is None or den is None:
                    cells.append("-")
                    continue
                r, kind = ratio(num, den)
                cells.append(f"{'' if kind == '=' else kind}{r:.2f}x")
                if kind == "=":
                    ratios.setdefault((noise, name), []).append(r)
            print(
                f"{table:16s}{show(ya):>24s}{show(yk):>24s}{str(da or '-'):>16s}"
                f"{str(dk or '-'):>16s}{cells[0]:>15s}{cells[1]:>15s}{cells[2]:>10s}"
            )
    print("\ngeometric means over the tables where both got there:")
    for (noise, name), rs in sorted(ratios.items()):
        label = "as measured" if not noise else "under noise"
        mean = np.exp(np.mean(np.log(rs)))
        print(f"  {label:12s} default, kept {name}: {mean:.2f}x ({len(rs)} tables)")


if __name__ == "__main__":
    main()
