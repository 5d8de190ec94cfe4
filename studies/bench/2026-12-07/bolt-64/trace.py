"""Stop 64: any `autoprune` command with the screened sampler's `choose` wrapped to print each
keep set it proposes (`TRACE n keep-set`) to stderr: where the default's first trials go.

    python studies/bench/2026-12-07/bolt-64/trace.py bench replay --truth TABLE --seeds 1 \
        --strategy screened-mf --out /tmp/trace 2>&1 | grep TRACE
"""

import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

base = mf.choose
proposed = [0]


def recording(pool, observed, busy, reference, predicted=None, prior=None, posterior=None):
    chosen = base(pool, observed, busy, reference, predicted, prior, posterior)
    proposed[0] += 1
    keep = pool.keeps[chosen] if chosen is not None else None
    print(f"TRACE {proposed[0]} {keep} observed={len(observed)}", file=sys.stderr)
    return chosen


mf.choose = recording
sys.exit(main(sys.argv[1:]))
