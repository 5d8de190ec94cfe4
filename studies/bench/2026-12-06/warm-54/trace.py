"""The keep sets a replayed strategy trains, in order, on one table (one seed, as measured or a
noisy sibling), each with its value, the best of its size, whether it is a true front keep set,
the hypervolume share and the compute so far: the cold default, then the warm-started one.
Each runs as `bench replay` runs it (a budget of 100 trials, which decides the screen); the
first TRIALS are printed.

    python trace.py TABLE SOURCE SEED NOISE TRIALS
    PATCH=sizelevel:0.03 python trace.py ...   # with a patch of tried/ (its module:argument)
"""

import os
import sys
from pathlib import Path

from autoprune.bench import replay as r
from autoprune.bench.truth import load_truth

if os.environ.get("PATCH"):
    sys.path.insert(0, str(Path(__file__).parent / "tried"))
    name, arg = os.environ["PATCH"].split(":")
    sys.argv.insert(1, arg)  # each patch reads its argument from the command line
    __import__(name)

table, source = Path(sys.argv[1]), Path(sys.argv[2])
seed, noise, trials = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
t = r.Table.load(*load_truth(table))
known = r.strategies(t, [r.Table.load(*load_truth(source))])
t = t.perturbed(seed, noise) if noise else t
value = dict(zip(t.keeps, t.values[:, 0], strict=True))
best: dict[int, float] = {}
for keep, v in value.items():
    best[len(keep)] = min(best.get(len(keep), float("inf")), v)
front = sorted(t.true_front, key=len)
print("true front", front, [round(float(value[k]), 3) for k in front])
for name in os.environ.get("STRATS", "screened-mf,screened-mf+warm").split(","):
    curve, compute, _, seen = r.replay_one(t, known[name], seed, 100)
    print(name)
    for i, keep in enumerate(seen[:trials]):
        mark = "F" if keep in t.true_front else " "
        print(
            f"  {i:2d} {str(keep):22s} {value[keep]:.3f} best of its size {best[len(keep)]:.3f}"
            f" {mark} hv {curve[i]:.3f} compute {compute[i]:.0f} s"
        )
