"""Stop 64: per table, each keep set that drops one layer: its full-budget val MASE (normalised by
the full model's) and its 10-step rung value, and the table's zero-shot ablation importance of
that layer (`priors`): which of the three tells a needed layer apart.

    python studies/bench/2026-12-07/bolt-64/drop_one.py TABLE.json ... > drop_one.log
"""

import sys

from autoprune.bench.replay import Table, load_truth

for path in sys.argv[1:]:
    meta, rows = load_truth(path)
    table = Table.load(meta, rows)
    layers = range(table.num_layers)
    ablation = meta["priors"]["ablation"]
    print(path)
    for layer in layers:
        i = table.keeps.index(tuple(x for x in layers if x != layer))
        print(
            f"  without {layer}: val {table.values[i][0]:.3f}  r10 {table.rungs[10][i]:.2f}  "
            f"zero-shot ablation {ablation[layer]:.3f}"
        )
