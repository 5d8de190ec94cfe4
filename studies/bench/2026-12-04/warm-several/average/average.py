"""The warm start from several tables as `autoprune search --warm-start A,B` did before
2026-12-04: one prior mean, fitted to every source's keep sets, averaged where they overlap
(docs/search-efficiency.md). From the repository root:

    python studies/bench/2026-12-04/warm-several/average/average.py TARGET SRC,SRC,... OUT

replays the default warm-started (`screened-mf+warm`) on 12 siblings (noise 0.01) of the
2026-12-02 table of TARGET and writes OUT/TARGET-from-SRC+SRC.json.
"""

import json
import sys
from pathlib import Path

import numpy as np

import autoprune.bench.replay as replay

TABLES = Path("studies/bench/2026-12-02")


def load(dataset: str) -> replay.Table:
    return replay.Table.load(*replay.load_truth(TABLES / f"truth-moirai-tiny-8-{dataset}.json"))


target, sources, out = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3])
values: dict[tuple[int, ...], list[float]] = {}
for source in sources:
    for keep, value in replay.warm_knowledge(load(source)).items():
        values.setdefault(keep, []).append(value)
averaged = {keep: float(np.mean(v)) for keep, v in values.items()}
replay.warm_knowledge = lambda source, trials=None: averaged  # every source: the one average
result = replay.run(load(target), 12, 100, ["screened-mf+warm"], print, [load(sources[0])], 0.01)
result["truth"] = str(TABLES / f"truth-moirai-tiny-8-{target}.json")
result["warm_start_from"] = "average of " + "+".join(sources)
out.mkdir(parents=True, exist_ok=True)
(out / f"{target}-from-{'+'.join(sources)}.json").write_text(json.dumps(result, indent=1))
