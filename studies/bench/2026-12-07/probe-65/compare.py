"""Stop 65: per table and mode (a folder of `cold/` and `noise/` replays of the default), the
default's compute to 95% / 100% of the true hypervolume as measured and under noise (median of
5 siblings) and how many seeds reached 95%; then each mode's geometric-mean ratio of compute to
95% against the first mode's, per group of tables (Chronos-Bolt, the Moirai design tables, the
held-out Moirai tables), over the tables both reached, and the tables only one of them reached.

    python compare.py OUT base,replace,combine,free,slope
"""

import json
import sys
from pathlib import Path

import numpy as np


def group(truth: str) -> str:
    if "bolt" in truth:
        return "chronos-bolt"
    return "moirai design" if "/rebuilt/" in truth else "moirai held-out"


def main() -> None:
    root, modes = Path(sys.argv[1]), sys.argv[2].split(",")
    found = {}
    for mode in modes:
        for kind in ("cold", "noise"):
            for path in sorted((root / mode / kind).glob("*.json")):
                replay = json.loads(path.read_text())
                run = replay["strategies"]["screened-mf"]
                found[replay["truth"], kind, mode] = (
                    run["compute_s_to_95"]["median"],
                    run["compute_s_to_100"]["median"],
                    run["trials_to_95"]["reached"],
                )
    tables = sorted({t for t, _, _ in found}, key=lambda t: (group(t), t))

    def cell(v) -> str:
        if v is None:
            return "-"
        c95, c100, reached = v

        def show(c):
            return "never" if c is None else f"{c:.0f}"

        return f"{show(c95)}/{show(c100)} ({reached})"

    for kind in ("cold", "noise"):
        print(f"\n{'as measured' if kind == 'cold' else 'under noise 0.01'}: to 95% / to 100% s")
        print(f"{'table':36s}" + "".join(f"{m:>22s}" for m in modes))
        for t in tables:
            name = Path(t).stem.removeprefix("truth-")
            print(f"{name:36s}" + "".join(f"{cell(found.get((t, kind, m))):>22s}" for m in modes))
    print("\ngeometric mean of compute to 95% against", modes[0])
    for g in sorted({group(t) for t in tables}):
        for kind in ("cold", "noise"):
            for mode in modes[1:]:
                ratios, only = [], []
                for t in (t for t in tables if group(t) == g):
                    a, b = found.get((t, kind, mode)), found.get((t, kind, modes[0]))
                    if a is None or b is None:
                        continue
                    if a[0] and b[0]:
                        ratios.append(a[0] / b[0])
                    elif a[0] or b[0]:
                        only.append(
                            f"{Path(t).stem.split('-8-')[-1]}: {mode if a[0] else modes[0]}"
                        )
                if not ratios and not only:
                    continue  # a mode not replayed on this group
                geo = np.exp(np.mean(np.log(ratios))) if ratios else float("nan")
                better = sum(r < 0.99 for r in ratios)
                worse = sum(r > 1.01 for r in ratios)
                print(
                    f"  {g:16s} {kind:5s} {mode:8s} {geo:.2f}x over {len(ratios)} "
                    f"(less on {better}, more on {worse})"
                    + (f"; reached by one only: {', '.join(only)}" if only else "")
                )


if __name__ == "__main__":
    main()
