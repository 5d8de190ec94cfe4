"""A truth table restricted to the keep sets that keep given layers (`always_keep`): what
`bench truth --space` with that `always_keep` builds, read off a table of the whole space
(the same measured rows, the screen's seconds scaled by the layer applications it would
spend). It checks that the restriction keeps the whole space's true hypervolume, and says
so: a replay of the sub-table is then timed against the same 100%.

    python subtable.py TABLE.json LAYER[,LAYER] OUT_DIR
"""

import csv
import json
import sys
from pathlib import Path

from autoprune.bench.replay import Table
from autoprune.bench.truth import load_truth
from autoprune.screen import all_keep_sets, applications

src, out = Path(sys.argv[1]), Path(sys.argv[3])
layers = sorted(int(x) for x in sys.argv[2].split(","))
meta, rows = load_truth(src)
whole = Table.load(meta, rows)
sub_meta = json.loads(json.dumps(meta))
sub_meta["space"]["always_keep"] = layers
kept = [r for r in rows if set(layers) <= set(r["keep"])]
sub_meta["space_size"] = sub_meta["realigned"] = len(kept)
sub = Table.load(sub_meta, kept)
spent = [applications(all_keep_sets(t.space)).sum() for t in (sub, whole)]
scale = spent[0] / spent[1]
sub_meta["seconds"]["screen_all"] = round(meta["seconds"]["screen_all"] * scale, 3)
sub_meta["restricted_from"] = str(src)
out.mkdir(parents=True, exist_ok=True)
stem = src.stem
(out / f"{stem}.json").write_text(json.dumps(sub_meta, indent=1) + "\n")
with open(src.with_suffix(".csv")) as f_in, open(out / f"{stem}.csv", "w", newline="") as f_out:
    reader = csv.DictReader(f_in)
    writer = csv.DictWriter(f_out, reader.fieldnames)
    writer.writeheader()
    for r in reader:
        if set(layers) <= {int(x) for x in r["keep"].split()}:
            writer.writerow(r)
print(
    f"{stem}: {len(kept)} of {len(whole.keeps)} keep sets keep {layers}; true hypervolume "
    f"{sub.true_hv:.6f} of the whole space's {whole.true_hv:.6f} "
    f"({sub.true_hv / whole.true_hv:.4%}); "
    f"screen {meta['seconds']['screen_all']} s -> {sub_meta['seconds']['screen_all']} s"
)
