"""Pairs over seeds FROM.. only: python fresh.py BASE NEW FROM"""
import sys, json, copy
from autoprune.bench.replay import paired, read
base, new, start = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
for r in (base, new):
    s = r["strategies"]["screened-mf"]
    s["curves"], s["compute_s"] = s["curves"][start:], s["compute_s"][start:]
    r["seeds"] = r["seeds"] - start
res = paired(base, new, "screened-mf")
for lv in ("95", "100"):
    x = res["levels"][lv]
    print(f"{sys.argv[1].split('/')[-1]} seeds {start}..: to {lv}% {x['geometric_mean_ratio']}x less {x['new_less']} more {x['new_more']} censored {x['censored']} of {x['seeds']}")
