"""Stop 64: per variant (a folder of `cold/` and `noise/` replays of the default) and table, the
default's compute to 95% of the true hypervolume as measured and under noise, and each variant's
geometric-mean ratio to the first folder's over the tables both reached.

    python zscore/compare.py zscore/std zscore/rank zscore/robust zscore/off zscore/w1
    python zscore/compare.py zscore/std zscore/off additive/add01 additive/add04
"""

import json
import sys
from pathlib import Path

import numpy as np

WIDTH = 34


def runs(folder: Path) -> dict[tuple[str, str], tuple]:
    found = {}
    for kind in ("cold", "noise"):
        for path in sorted((folder / kind).glob("*.json")):
            replay = json.loads(path.read_text())
            run = replay["strategies"]["screened-mf"]
            table = replay["truth"].split("tiny-8-")[1].removesuffix(".json")
            c95 = run["compute_s_to_95"]
            found[table, kind] = (
                c95["median"],
                c95.get("iqr"),
                run["compute_s_to_100"]["median"],
                run["trials_to_95"]["reached"],
            )
    return found


def main() -> None:
    folders = [Path(f) for f in sys.argv[1:]]
    variants = {folder.name: runs(folder) for folder in folders}
    names = list(variants)
    tables = sorted({table for found in variants.values() for table, _ in found})
    for kind in ("cold", "noise"):
        print(f"== {kind}: compute to 95% median [iqr] / to 100% (siblings that reached 95%)")
        print("table".ljust(15) + "".join(name.ljust(WIDTH) for name in names))
        logs: dict[str, dict[str, float]] = {name: {} for name in names}
        for table in tables:
            line = table.ljust(15)
            for name in names:
                row = variants[name].get((table, kind))
                if row is None:
                    line += "-".ljust(WIDTH)
                    continue
                c95, iqr, c100, reached = row
                spread = [round(x) if x else None for x in iqr] if iqr else ""
                line += f"{c95} {spread} /{c100} {reached}"[: WIDTH - 1].ljust(WIDTH)
                if c95:
                    logs[name][table] = np.log(c95)
            print(line)
        base = logs[names[0]]
        for name in names:
            common = [logs[name][t] - base[t] for t in logs[name] if t in base]
            if common:
                ratio = np.exp(np.mean(common))
                print(f"  {name}: geo-mean ratio to {names[0]}, {len(common)} tables: {ratio:.2f}")


if __name__ == "__main__":
    main()
