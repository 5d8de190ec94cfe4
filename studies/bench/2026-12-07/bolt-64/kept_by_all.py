"""Stop 64: per table, the layers that every keep set of its true front (inside the reference
box) keeps, and the share of those keep sets that keeps each layer; then a count per model
family of the tables where some layer is kept by the whole front.

    B=studies/bench; python $B/2026-12-07/bolt-64/kept_by_all.py $(find $B -name 'truth-*.json' \
        -not -path '*/two-pass/*' -not -path '*/tried/*' | sort) > kept_by_all.log
"""

import sys

from oracle import inside  # this folder's

from autoprune.bench.replay import Table, load_truth

counts: dict[str, list[int]] = {}
for path in sys.argv[1:]:
    table = Table.load(*load_truth(path))
    layers = range(table.num_layers)
    front = [table.keeps[i] for i in inside(table)]
    share = [sum(layer in keep for keep in front) / len(front) for layer in layers]
    needed = [layer for layer in layers if share[layer] == 1.0]
    family = "chronos-bolt" if "bolt" in path else "moirai"
    counts.setdefault(family, [0, 0])
    counts[family][0] += bool(needed)
    counts[family][1] += 1
    shares = " ".join(f"{s:.1f}" for s in share)
    print(f"{path}: {len(front)} front keep sets; kept by all: {needed}; shares: {shares}")
for family, (some, tables) in counts.items():
    print(f"{family}: some layer kept by the whole front on {some} of {tables} tables")
