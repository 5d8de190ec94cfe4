"""Zero-shot screening: every keep set of a space scored without re-alignment, cheaply.

Keep sets are walked in lexicographic order, so sets sharing a prefix of layers share that part
of the forward pass, and the head runs for several keep sets per call. Each set gets the
validation NLL and the MASE of its mean forecast (no sampling) on fixed, evenly spaced windows.
A cheap, biased fidelity: pruned models are far worse before re-alignment, so it is for ranking,
and how far that ranking can be trusted is measured by `autoprune bench`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from autoprune.data import Windows
from autoprune.errors import AutoPruneError
from autoprune.metrics import seasonal_error
from autoprune.models import Adapter, KeepSet
from autoprune.space import SearchSpace

EXHAUSTIVE_LIMIT = 1 << 16  # keep sets; a 16-layer space holds 65,535
SCREEN_WINDOWS = 64
# keep sets per head call: on small models the head's per-call cost dominates, not its arithmetic
# (README, "Priors, screening and one-shot baselines")
SCREEN_BATCH = 8
PROGRESS_EVERY = 64  # keep sets between two calls of `screen`'s progress hook
# the screened sampler screens only if the screen, projected from its first PROGRESS_EVERY keep
# sets, costs at most this share of the search's expected compute (the trials still to train x
# the full model's trial); past it the screen is a fixed cost before trial 1 that few trials
# repay: on the 12-layer default study it cost a third of a 30-trial search and an eighth of a
# 100-trial one, and the sampler without it reached the larger front on five of five 30-trial
# pairs and two of three 100-trial ones; on the 8-layer tables it is about 2% of a 30-trial
# search and pays many times over (docs/search-efficiency.md). Past ~120 trials it runs the
# 12-layer screen, which did not pay there at 200 trials either (two pairs); a lower share would
# leave ILI's 8-layer screen on a thin margin at 30 trials
SCREEN_SHARE = 0.05


class ScreenTooDear(Exception):
    """The zero-shot screen would cost more than it is allowed (`SCREEN_SHARE`)."""

    def __init__(self, projected_s: float | None, allowed_s: float) -> None:
        super().__init__(f"projected {projected_s} s, allowed {allowed_s:.0f} s")
        self.projected_s, self.allowed_s = projected_s, allowed_s


def skipped_sentence(
    projected_s: float | None, allowed_s: float, share: float | None = SCREEN_SHARE
) -> str:
    """Why the screened sampler went without the screen: the run's log line and the report's
    finding (`share`: the SCREEN_SHARE of the run that decided it; None where a study did not
    store it)."""
    limit = f"{share:.0%} of this search's expected compute" if share else "its share of the search"
    return (
        "Zero-shot screen skipped: it would take "
        + (f"about {projected_s:.0f} s, " if projected_s else "")
        + f"more than {limit} ({allowed_s:.0f} s allowed); the sampler starts from which layers "
        "each keep set keeps alone, and `--screen on` screens anyway."
    )


def shared_prefix(a: KeepSet, b: KeepSet) -> int:
    """How many leading layers two keep sets share."""
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return common


def applications(keep_sets: Iterable[KeepSet]) -> np.ndarray:
    """Layer applications `screen` spends on each keep set, walking them in its order
    (lexicographic): the layers past the prefix it shares with the keep set before."""
    ordered = sorted(keep_sets)
    before = [(), *ordered][: len(ordered)]
    return np.array([len(k) - shared_prefix(b, k) for b, k in zip(before, ordered, strict=True)])


def all_keep_sets(space: SearchSpace) -> list[KeepSet]:
    """Every keep set of the space, in lexicographic order."""
    if space.size > EXHAUSTIVE_LIMIT:
        raise AutoPruneError(
            f"the search space holds {space.size:,} keep sets, more than the {EXHAUSTIVE_LIMIT:,} "
            "that exhaustive screening enumerates; narrow it with min_kept/max_kept/always_keep"
        )
    fixed = set(space.always_keep)
    sets = []
    for k in range(max(space.min_kept, len(fixed)), space.upper + 1):
        for extra in itertools.combinations(space.droppable, k - len(fixed)):
            sets.append(tuple(sorted(fixed | set(extra))))
    return sorted(sets)


POOL_SAMPLE = 4096


def candidate_pool(space: SearchSpace, seed: int) -> list[KeepSet]:
    """Every keep set when the space is small enough, else a random sample stratified by size
    (equal numbers per size where the size has that many)."""
    if space.size <= EXHAUSTIVE_LIMIT:
        return all_keep_sets(space)
    rng = np.random.default_rng(seed)
    fixed = set(space.always_keep)
    sizes = list(range(max(space.min_kept, len(fixed)), space.upper + 1))
    per_size = POOL_SAMPLE // len(sizes)
    pool: set[KeepSet] = set()
    free = np.array(space.droppable)
    for k in sizes:
        available = math.comb(len(free), k - len(fixed))
        wanted = min(per_size, available)
        chosen: set[KeepSet] = set()
        while len(chosen) < wanted:
            extra = rng.choice(free, size=k - len(fixed), replace=False)
            chosen.add(tuple(sorted(fixed | {int(i) for i in extra})))
        pool |= chosen
    return sorted(pool)


def window_mase(mean: torch.Tensor, future: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per window, the MASE of a mean forecast (B, steps) against `future` (B, horizon), scaled
    by each window's seasonal error: the screen's measure. One pass of an autoregressive model
    covers only its first steps, so the future is cut to them."""
    return (future[:, : mean.shape[1]] - mean).abs().mean(dim=1) / scale


@torch.no_grad()
def screen(
    adapter: Adapter,
    model: nn.Module,
    windows: Windows,
    horizon: int,
    patch_size: int,
    seasonality: int,
    keep_sets: Iterable[KeepSet],
    on_progress: Callable[[int], None] = lambda done: None,
    batch: int = SCREEN_BATCH,
) -> dict[KeepSet, dict[str, float]]:
    """Zero-shot `nll` and `mase` (of the mean forecast) of each keep set on `windows`, over
    the horizon's first `adapter.screen_steps(horizon)` steps."""
    device = next(model.parameters()).device
    steps = adapter.screen_steps(horizon)
    past = torch.as_tensor(windows.past, device=device)
    future = torch.as_tensor(windows.future[:, :steps], device=device)
    scale = torch.as_tensor(seasonal_error(windows.past, seasonality), device=device)
    staged = adapter.staged(model, past, steps, patch_size)
    layers = adapter.layers(model)
    applied: list[int] = []
    states = [staged.embed()]
    keep_sets = sorted(keep_sets)
    batch = max(1, min(batch, len(keep_sets)))  # a few keep sets are not padded to a batch
    if not isinstance(states[0], torch.Tensor) or len(states[0]) != len(past):
        # one row per window or one by one: Chronos-Bolt's state is an encoder/decoder pair,
        # TimesFM's stacks each window with its sign-flipped copy
        batch = 1
    heads = staged
    if batch > 1:  # the head's inputs for `batch` keep sets side by side: windows repeated
        heads = adapter.staged(model, past.repeat(batch, 1), steps, patch_size)
        heads.embed()  # a staged pass is ready for its head once embedded
    futures, scales = future.repeat(batch, 1), scale.repeat(batch)
    pending: list[tuple[KeepSet, torch.Tensor]] = []
    results = {}

    def run_heads() -> None:
        hiddens = [hidden for _, hidden in pending]
        hiddens += hiddens[-1:] * (batch - len(hiddens))  # a last, short batch is padded
        mean, nll = heads.mean_and_nll(hiddens[0] if batch == 1 else torch.cat(hiddens), futures)
        mase = window_mase(mean, futures, scales).view(batch, -1).mean(dim=1)
        nll = nll.view(batch, -1).mean(dim=1)
        for i, (keep, _) in enumerate(pending):
            results[keep] = {"nll": nll[i].item(), "mase": mase[i].item()}
        pending.clear()

    for done, keep in enumerate(keep_sets, start=1):
        common = shared_prefix(applied, keep)
        del applied[common:]
        del states[common + 1 :]
        for layer in keep[common:]:
            states.append(staged.apply(layers[layer], states[-1]))
            applied.append(layer)
        pending.append((keep, states[-1]))
        if len(pending) == batch:
            run_heads()
        if done % PROGRESS_EVERY == 0:
            on_progress(done)
    if pending:
        run_heads()
    return results


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    if len(x) < 3:
        return float("nan")
    return float(spearmanr(x, y).statistic)
