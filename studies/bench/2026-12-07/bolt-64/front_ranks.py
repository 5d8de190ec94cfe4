"""Stop 64: each true-front keep set of a table (inside the reference box), its objectives, its
screen's and its accuracy's rank within its size, the share of the true hypervolume it holds
alone, and its 10-step rung value.

    python studies/bench/2026-12-07/bolt-64/front_ranks.py TABLE.json ... > front_ranks.log
"""

import sys

import numpy as np
from oracle import inside  # this folder's
from scipy.stats import rankdata

from autoprune.bench.replay import Table, load_truth
from autoprune.pareto import hypervolume

for path in sys.argv[1:]:
    table = Table.load(*load_truth(path))
    kept = np.array([len(k) for k in table.keeps])
    front = inside(table)
    print(path, "reference", table.reference)
    for i in sorted(front, key=lambda i: table.values[i][1]):
        same = np.flatnonzero(kept == kept[i])
        at = same.tolist().index(i)
        screen = int(rankdata(table.screen[same])[at])
        accuracy = int(rankdata(table.values[same, 0])[at])
        alone = hypervolume(table.values[[i]], table.reference) / table.true_hv
        print(
            f"  {str(table.keeps[i]):22} values {np.round(table.values[i], 3)} "
            f"screen-rank {screen}/{len(same)} accuracy-rank {accuracy} alone {alone:.2f} "
            f"r10 {table.rungs[10][i]:.3f}"
        )
