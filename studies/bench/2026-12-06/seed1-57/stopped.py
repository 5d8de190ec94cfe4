"""The keep sets the default (`screened-mf`) stops at the rung in one replay seed, as measured,
and when it trains each true front keep set (stop 57).

    python stopped.py TABLE.json SEED
"""

import sys

from autoprune.bench import replay as r
from autoprune.bench.truth import load_truth

t = r.Table.load(*load_truth(sys.argv[1]))
ledger: list = []
curve, _, _, seen = r.replay_one(
    t, r.strategies(t, [])["screened-mf"], int(sys.argv[2]), 100, ledger
)
value = dict(zip(t.keeps, t.values[:, 0], strict=True))
stopped = [k for k, what, _ in ledger if what == "stopped"]
print(f"trained {len(seen)}, stopped {len(stopped)}, hypervolume share {curve[-1]:.3f}")
front_stopped = [(k, round(float(value[k]), 3)) for k in stopped if k in t.true_front]
print("front keep sets stopped:", front_stopped)
print("front keep sets trained at:", {k: seen.index(k) for k in t.true_front if k in seen})
print("stopped:", [(k, round(float(value[k]), 3)) for k in stopped])
