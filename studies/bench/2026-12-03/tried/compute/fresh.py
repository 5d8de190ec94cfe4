"""Pairs of two replays over seeds FROM onward only: python fresh.py BASE NEW FROM"""

import sys

from autoprune.bench.replay import paired, read

base, new, start = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
for r in (base, new):
    s = r["strategies"]["screened-mf"]
    s["curves"], s["compute_s"] = s["curves"][start:], s["compute_s"][start:]
    r["seeds"] = r["seeds"] - start
result = paired(base, new, "screened-mf")
for level in ("95", "100"):
    x = result["levels"][level]
    print(
        f"seeds {start}..: to {level}% {x['geometric_mean_ratio']}x, less on {x['new_less']}, "
        f"more on {x['new_more']}, censored {x['censored']} of {x['seeds']}"
    )
