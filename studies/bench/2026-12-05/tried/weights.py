"""The screen-weight variants (docs/search-efficiency.md, "Tried since, not adopted"): the
surrogate's grid of screen weights (`autoprune.multifidelity.SCREEN_WEIGHTS`, today 2 and 4)
replaced by WEIGHTS. From the repository root:

    python studies/bench/2026-12-05/tried/weights.py 0,2,4 bench replay ARGS...
"""

import sys

import autoprune.multifidelity as mf
from autoprune.cli import main

mf.SCREEN_WEIGHTS = tuple(float(w) for w in sys.argv.pop(1).split(","))
sys.exit(main(sys.argv[1:]))
