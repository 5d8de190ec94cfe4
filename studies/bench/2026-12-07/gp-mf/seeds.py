"""Each seed's compute to 95% of the true hypervolume (seconds; None: not within the budget), the
keep sets it trained and the compute it spent, for GPSampler, GPSampler with the product's rung
(`gp-mf`) and the default (`screened-mf`), from `autoprune bench replay` files:

    python studies/bench/2026-12-07/gp-mf/seeds.py REPLAY.json ...
"""

import json
import sys
from pathlib import Path

from autoprune.bench.replay import compute_hits
from autoprune.bench.targets import Compute

for path in sys.argv[1:]:
    replay = json.loads(Path(path).read_text())
    for name, run in replay["strategies"].items():
        if name not in ("gp", "gp-mf", "screened-mf"):
            continue
        hits = compute_hits(run["curves"], run["compute_s"], 0.95)
        print(
            path.rsplit("/", 1)[-1],
            name,
            f"median {Compute.of(run, 0.95)};",
            "per seed",
            [round(h) if h != float("inf") else None for h in hits],
            "trained",
            [len(c) for c in run["curves"]],
            "spent",
            [round(c[-1]) for c in run["compute_s"]],
        )
