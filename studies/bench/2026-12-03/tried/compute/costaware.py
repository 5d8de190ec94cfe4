"""The `compute` variant (docs/search-efficiency.md): each candidate's expected improvement
divided by its share of the full model's parameters to POWER. From the repository root:

    python studies/bench/2026-12-03/tried/compute/costaware.py POWER bench replay ARGS...
"""

import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

power = float(sys.argv.pop(1))
base = mf.expected_improvement


def per_compute(pool, observed, posterior, reference):
    return base(pool, observed, posterior, reference) / pool.costs[:, 0] ** power


mf.expected_improvement = per_compute
sys.exit(main(sys.argv[1:]))
