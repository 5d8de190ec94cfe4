"""One-shot baselines: the keep sets a person would try by hand, trained as ordinary trials
(same re-alignment budget) and tagged, so the report can show them next to the front.

- `drop-last`: keep the first k layers (Gromov et al.'s simple rule);
- `random`: k layers drawn at random (seeded);
- `screen`: the best size-k keep set of the zero-shot screen;
- one per importance method: the k highest-scoring layers.

Sizes default to a quarter, half and three quarters of the layers. The same sets can seed a
search (`autoprune search --enqueue bi,drop-last`): they are queued as its first trials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from autoprune.backends import local
from autoprune.errors import AutoPruneError
from autoprune.importance import METHODS, top_k
from autoprune.models import KeepSet
from autoprune.record import TrialRecord
from autoprune.search.cached import priors, screen_table
from autoprune.search.prepared import Prepared
from autoprune.study import BASELINES_ATTR, trained_trials

KINDS = ("drop-last", "random", "screen", *METHODS, "ablation")


def default_sizes(num_layers: int) -> list[int]:
    return sorted({max(1, round(num_layers * f)) for f in (0.25, 0.5, 0.75)})


def check_kinds(kinds: Iterable[str]) -> list[str]:
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise AutoPruneError(f"unknown baseline {unknown[0]!r}; known: {', '.join(KINDS)}")
    return kinds


def baseline_sets(prep: Prepared, kinds: list[str], sizes: list[int]) -> list[tuple[str, KeepSet]]:
    space = prep.ctx.space
    layers = space.num_layers
    scores = priors(prep, [k for k in kinds if k not in ("drop-last", "random", "screen")])
    zero_shot = screen_table(prep) if "screen" in kinds else {}
    rng = np.random.default_rng(prep.settings["seed"])
    result = []
    for kind in kinds:
        for size in sizes:
            if kind == "drop-last":
                keep = tuple(range(size))
            elif kind == "random":
                keep = tuple(sorted(int(i) for i in rng.choice(layers, size, replace=False)))
            elif kind == "screen":
                same_size = [k for k in zero_shot if len(k) == size]
                keep = min(same_size, key=lambda k: zero_shot[k]["mase"])
            else:
                keep = top_k(scores[kind], size)
            keep = space.keep_from_flags({i: i in keep for i in space.droppable})
            result.append((kind, keep))
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
    """Queue baseline keep sets as the first trials of a new search; returns how many."""
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
