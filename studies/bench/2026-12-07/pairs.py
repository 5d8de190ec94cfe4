"""Stop 58's paired replays in one table (docs/search-efficiency.md): each replay in NEW (a folder)
against the replay of the same table, noise and seeds in the first BASE folder that holds one,
seed by seed (`bench.replay.paired`), as rows of compute to 95% and to 100% of the true
hypervolume (geometric mean over seeds of NEW over BASE; siblings where NEW needed less / more),
then the geometric mean over tables, design and held-out apart. From the repository root:

    python studies/bench/2026-12-07/pairs.py NEW BASE [BASE...]
"""

import math
import sys
from pathlib import Path

from autoprune.bench.replay import paired, read

# the seven tables every rule since 2026-12-05 was designed on (README, "Search efficiency")
DESIGN = {
    f"studies/bench/2026-12-05/rebuilt/truth-moirai-tiny-8-{d}.json"
    for d in ("etth1", "etth2", "ettm1", "exchange-rate", "ili")
} | {
    f"studies/bench/2026-12-05/12-layer/truth-moirai-tiny-{d}-moirai-tiny-max4.json"
    for d in ("etth1", "etth2")
}

new, bases = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
totals: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
print("| table | | to 95% | to 100% |\n|---|---|---|---|")
for path in sorted(new.glob("replay-*.json")):
    base = next((b / path.name for b in bases if (b / path.name).is_file()), None)
    if base is None:
        continue
    result = paired(read(base), read(path), "screened-mf", None, 0)
    name = Path(result["truth"]).name
    kind = "design" if result["truth"] in DESIGN else "held-out"
    cells = []
    for level in ("95", "100"):
        r = result["levels"][level]
        ratio = r["geometric_mean_ratio"]
        cells.append("-" if ratio is None else f"{ratio:.2f}x ({r['new_less']}/{r['new_more']})")
        if ratio is not None:
            totals.setdefault((kind, level), []).append(
                (math.log(ratio), r["new_less"], r["new_more"])
            )
    print(f"| {name[6:-5]} | {kind} | {' | '.join(cells)} |")
for (kind, level), rows in sorted(totals.items()):
    mean = math.exp(sum(r[0] for r in rows) / len(rows))
    less, more = sum(r[1] for r in rows), sum(r[2] for r in rows)
    summary = f"{kind}, to {level}%: {mean:.3f}x over {len(rows)} tables"
    print(f"{summary}; siblings less {less}, more {more}")
