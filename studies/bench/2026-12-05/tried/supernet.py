"""Replay patch (docs/search-efficiency.md, "A shared re-alignment as the screen"): the screened
sampler's prior mean from the supernet screen (a table copy written by `scripts/supernet_screen.py
--out COPY`), in place of the flat 1; the kernel keeps the table's own zero-shot screen, and the
replay pays the supernet's seconds for the screen. MODE `prior`: the supernet screen itself,
normalised by its full model's; `within`: only how it ranks keep sets within their size, its log
less the mean of its size, as three prior rows of strength 0, 0.5 and 1 among which marginal
likelihood chooses (before any trial, their mean); `cost`: no prior, only the supernet's seconds
paid for the table's own screen (what the screen's cost alone does).

    python supernet.py MODE COPY bench replay --truth TABLE --seeds 12 --noise 0.01 \
        --strategy screened-mf --out supernet-MODE

(The supernet screen in the kernel instead needs no patch: `autoprune bench replay --truth
COPY/TABLE ...`.)"""

import sys
from pathlib import Path

import numpy as np

import autoprune.bench.replay as replay
import autoprune.multifidelity as mf
from autoprune.bench.truth import load_truth
from autoprune.cli import main

mode, copy_dir = sys.argv[1], Path(sys.argv[2])
sys.argv = [sys.argv[0], *sys.argv[3:]]
truth = Path(sys.argv[sys.argv.index("--truth") + 1])
supernet = replay.Table.load(*load_truth(copy_dir / truth.name))
logs = dict(zip(supernet.keeps, np.log(supernet.screen), strict=True))  # normalised
load = replay.Table.load.__func__


def load_paying_the_supernet(cls, meta, rows):
    table = load(cls, meta, rows)
    table.screen_cost = supernet.screen_cost
    return table


def prior_rows(keeps) -> np.ndarray:
    log = np.array([logs[k] for k in keeps])
    if mode == "prior":
        return np.exp(log)[None]
    size = np.array([len(k) for k in keeps])
    for kept in set(size):
        log[size == kept] -= log[size == kept].mean()
    return np.exp(np.outer([0.0, 0.5, 1.0], log))


replay.Table.load = classmethod(load_paying_the_supernet)
init = mf.ScreenedSampler.__init__


def init_with_prior(self, pool, *args, **kwargs):
    init(self, pool, *args, **kwargs)
    if mode == "cost":
        return
    self.prior = prior_rows(pool.keeps)
    self.warm_names = [f"supernet-{i}" for i in range(len(self.prior))]


mf.ScreenedSampler.__init__ = init_with_prior
sys.exit(main())
