"""Each true front keep set of an exhaustive table: its ratio to the re-aligned full model's val
MASE, the next keep set of its size, where the zero-shot screen and the 10-step rung rank it
within its size, and the share of the true hypervolume a search holds without it (stop 57).

    python front.py TABLE.json...
"""

import sys

import numpy as np

from autoprune.bench.replay import Table
from autoprune.bench.truth import load_truth
from autoprune.pareto import hypervolume, non_dominated

for path in sys.argv[1:]:
    t = Table.load(*load_truth(path))
    v, kept = t.values, np.array([len(k) for k in t.keeps])
    print(path, "true hypervolume", round(t.true_hv, 4))
    for i in sorted(np.flatnonzero(non_dominated(v)), key=lambda i: kept[i]):
        rows = np.flatnonzero(kept == kept[i])
        others = np.sort(v[rows[rows != i], 0])
        rest = np.delete(np.arange(len(v)), i)
        without = hypervolume(v[rest][non_dominated(v[rest])], t.reference) / t.true_hv
        screen = int(np.sum(t.screen[rows] < t.screen[i])) + 1
        rung = int(np.sum(t.rungs[10][rows] < t.rungs[10][i])) + 1
        print(
            f"  {list(t.keeps[i])} {v[i, 0]:.3f} (next {others[0]:.3f}; screen {screen} of"
            f" {len(rows)}, rung {rung}; without it {without:.3f})"
        )
