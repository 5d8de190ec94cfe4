"""Each true front keep set of an exhaustive table: its ratio to the re-aligned full model's val
MASE, the next keep set of its size, where the zero-shot screen and the stop rung (10 steps) rank it
within its size, and the share of the true hypervolume a search holds without it (stop 57).

    python front.py TABLE.json...
"""

import sys

import numpy as np

from autoprune.bench.replay import Table
from autoprune.bench.truth import load_truth
from autoprune.multifidelity import stop_rung

for path in sys.argv[1:]:
    t = Table.load(*load_truth(path))
    v, kept = t.values, np.array([len(k) for k in t.keeps])
    row, rung_values = {k: i for i, k in enumerate(t.keeps)}, t.rungs[stop_rung(list(t.rungs))]
    print(path, "true hypervolume", round(t.true_hv, 4))
    for name, without in t.hv_without().items():  # the front, smallest keep sets first
        i = row[tuple(int(n) for n in name.split())]
        rows = np.flatnonzero(kept == kept[i])
        others = np.sort(v[rows[rows != i], 0])
        screen = int(np.sum(t.screen[rows] < t.screen[i])) + 1
        rung = int(np.sum(rung_values[rows] < rung_values[i])) + 1
        print(
            f"  {list(t.keeps[i])} {v[i, 0]:.3f} (next {others[0]:.3f}; screen {screen} of"
            f" {len(rows)}, rung {rung}; without it {without:.3f})"
        )
