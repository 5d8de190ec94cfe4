"""Variant: expected hypervolume improvement per unit of predicted re-alignment compute
(params share as the proxy). Run: python costaware.py POWER <autoprune bench replay args>"""
import sys
import numpy as np
import autoprune.multifidelity as mf

power = float(sys.argv.pop(1))
base = mf.expected_improvement

def per_cost(pool, observed, posterior, reference):
    return base(pool, observed, posterior, reference) / pool.costs[:, 0] ** power

mf.expected_improvement = per_cost
from autoprune.cli import main

sys.exit(main(sys.argv[1:]))
