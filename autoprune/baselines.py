"""One-shot baselines: the keep sets a person would try by hand, trained as ordinary trials
(same re-alignment budget) and tagged, so the report can show them next to the front. The same
sets can seed a search as its first trials (`enqueue_seeds`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from autoprune.backends import local
from autoprune.errors import AutoPruneError
from autoprune.importance import all_methods, top_k
from autoprune.models import KeepSet
from autoprune.record import TrialRecord
from autoprune.registry import Registry
from autoprune.search.cached import priors, screen_table
from autoprune.search.prepared import Prepared
from autoprune.study import BASELINES_ATTR, trained_trials


@dataclass
class Sources:
    """What a baseline kind picks from; the importance priors and the zero-shot screen are
    computed once, and only when a kind asked for reads them."""

    num_layers: int
    rng: np.random.Generator  # seeded by the study: the same sets on every run
    priors: Callable[[str], list[float]]
    screen: Callable[[], dict]


BASELINES: Registry[Callable[[Sources, int], KeepSet]] = Registry("baseline")


@BASELINES.register("drop-last")
def _drop_last(src: Sources, size: int) -> KeepSet:
    """The first k layers (Gromov et al.'s simple rule)."""
    return tuple(range(size))


@BASELINES.register("random")
def _random(src: Sources, size: int) -> KeepSet:
    """k layers drawn at random."""
    return tuple(sorted(int(i) for i in src.rng.choice(src.num_layers, size, replace=False)))


@BASELINES.register("screen")
def _screen(src: Sources, size: int) -> KeepSet:
    """The best size-k keep set of the zero-shot screen."""
    table = src.screen()
    return min((k for k in table if len(k) == size), key=lambda k: table[k]["mase"])


for _method in all_methods():  # each importance method: its k highest-scoring layers
    BASELINES.register(_method, lambda src, size, method=_method: top_k(src.priors(method), size))


def default_sizes(num_layers: int) -> list[int]:
    return sorted({max(1, round(num_layers * f)) for f in (0.25, 0.5, 0.75)})


def check_kinds(kinds: Iterable[str]) -> list[str]:
    return [BASELINES.check(kind) for kind in kinds]


def baseline_sets(prep: Prepared, kinds: list[str], sizes: list[int]) -> list[tuple[str, KeepSet]]:
    """(kind, keep set) for every kind and size k (by default a quarter, half and three quarters
    of the layers), repaired into the search space."""
    space = prep.ctx.space
    methods = [k for k in kinds if k in all_methods()]  # one shared pass for all
    src = Sources(
        space.num_layers,
        np.random.default_rng(prep.settings["seed"]),
        functools.cache(lambda method: priors(prep, methods)[method]),
        functools.cache(lambda: screen_table(prep)),
    )
    result = []
    for kind in kinds:
        for size in sizes:
            keep = BASELINES[kind](src, size)
            result.append((kind, space.keep_from_flags({i: i in keep for i in space.droppable})))
    return result


def run(
    prep: Prepared,
    kinds: list[str],
    sizes: list[int] | None = None,
    log: Callable[[str], None] = print,
    on_trial: Callable = lambda study, trial: None,
) -> list[dict]:
    """Train every baseline keep set not trained yet; returns and stores the baseline table."""
    study, space = prep.study, prep.ctx.space
    sizes = sizes or default_sizes(space.num_layers)
    bad = [s for s in sizes if not space.min_kept <= s <= space.upper]
    if bad:
        raise AutoPruneError(
            f"baseline size {bad[0]} is outside the space's {space.min_kept}..{space.upper} "
            "kept layers"
        )
    sets = baseline_sets(prep, check_kinds(kinds), sizes)
    done = {TrialRecord.of(t).keep_set: t.number for t in trained_trials(study)}
    queued = set()
    for kind, keep in sets:
        if keep not in done and keep not in queued:
            study.enqueue_trial(space.params_of(keep), TrialRecord(baseline=kind).attrs())
            queued.add(keep)
    if queued:
        log(f"training {len(queued)} one-shot baseline keep sets ...")
        target = len(trained_trials(study)) + len(queued)
        local.run(study, prep.ctx, target, on_trial)
    trained = {TrialRecord.of(t).keep_set: t for t in trained_trials(study)}
    table = [
        {
            "baseline": kind,
            "kept": len(keep),
            "keep": list(keep),
            "trial": trained[keep].number if keep in trained else None,
            "values": list(trained[keep].values) if keep in trained else None,
        }
        for kind, keep in sets
    ]
    previous = [
        b
        for b in study.user_attrs.get(BASELINES_ATTR, [])
        if (b["baseline"], b["kept"]) not in {(r["baseline"], r["kept"]) for r in table}
    ]
    study.set_user_attr(BASELINES_ATTR, previous + table)
    return table


def enqueue_seeds(prep: Prepared, kinds: list[str]) -> int:
    """Queue baseline keep sets as the first trials of a new search (`autoprune search
    --enqueue bi,drop-last`); returns how many."""
    if not kinds or trained_trials(prep.study):
        return 0
    space = prep.ctx.space
    sets = baseline_sets(prep, check_kinds(kinds), default_sizes(space.num_layers))
    seen = set()
    for kind, keep in sets:
        if keep not in seen:
            prep.study.enqueue_trial(space.params_of(keep), TrialRecord(baseline=kind).attrs())
            seen.add(keep)
    return len(seen)
