"""Pareto front, hypervolume and selection rules: pure functions on arrays, no I/O.

All objectives are minimised and normalised by the re-aligned full model, the reference every
trial is compared with (1.0 = as good / as large / as slow as it). The hypervolume reference
point (`hv_reference`) is 1.1 times its error and its costs, so a pruned model adds volume only
if it is cheaper and at most 10% less accurate. Filtering and hypervolume come from `moocore`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import moocore
import numpy as np

from autoprune.errors import UnknownNameError
from autoprune.metrics import METRICS, accuracy_index

# not looser: the cheapest, much worse models would dominate the volume (README, "Front and
# selection")
ACCURACY_REFERENCE = 1.1
COST_REFERENCE = 1.0


def hv_reference(objectives: Sequence[str]) -> np.ndarray:
    return np.array([ACCURACY_REFERENCE if o in METRICS else COST_REFERENCE for o in objectives])


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point dominates (ties are all kept)."""
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(points, keep_weakly=True))


def normalise(points: np.ndarray, full: Sequence[float]) -> np.ndarray:
    return np.asarray(points, dtype=float) / np.asarray(full, dtype=float)


def hypervolume(normalised: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by `normalised` points and bounded by `reference` (0 if none inside)."""
    pts = np.asarray(normalised, dtype=float)
    if len(pts) == 0:
        return 0.0
    inside = np.all(pts < reference, axis=1)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(pts[inside], ref=reference))


def hypervolume_curve(normalised: np.ndarray, reference: np.ndarray) -> list[float]:
    """Hypervolume after each trial, in trial order (how fast the search found the front)."""
    return [hypervolume(normalised[: i + 1], reference) for i in range(len(normalised))]


@dataclass(frozen=True)
class Rule:
    """How one configuration is picked from the front (README, "Front and selection"):

    - `knee`: the balanced compromise (`knee` below);
    - `budget:<objective><=<value>`: the most accurate point whose `objective` is within a
      budget, absolute or `%` of the re-aligned full model;
    - `within:<accuracy><=<x>%`: the cheapest point whose accuracy is at most x% worse than the
      re-aligned full model's (validation), cheapest by the cost objectives in the study's
      order (`params`, then `latency_ms`), ties by accuracy; when no point is that close, the
      most accurate point (`rule_met` says which happened).
    """

    kind: str
    objective: str | None = None
    limit: float | None = None
    relative: bool = False

    def __str__(self) -> str:
        if self.kind == "knee":
            return "knee"
        suffix = "%" if self.relative else ""
        return f"{self.kind}:{self.objective}<={self.limit:g}{suffix}"


# `search` selects by within:<accuracy><=0% unless told otherwise - the smallest front point
# as accurate as the re-aligned full model on validation, else the most accurate: on the five
# registered datasets it was the rule whose selection most often matched the full model zero-shot
# on test (README, "Front and selection", has the table and the price in parameters)
DEFAULT_WITHIN_PERCENT = 0
_RULE = re.compile(r"(budget|within):([a-z_]+)<=([0-9.eE+-]+)(%?)")
_RULE_FORMS = (
    "knee, budget:<objective><=<value>[%] or within:<accuracy><=<x>%, e.g. "
    "budget:params<=50% or within:mase<=2%"
)


def default_rule(objectives: Sequence[str]) -> str:
    accuracy = objectives[accuracy_index(objectives)]
    return f"within:{accuracy}<={DEFAULT_WITHIN_PERCENT}%"


def parse_rule(text: str, objectives: Sequence[str]) -> Rule:
    """A rule from its text, checked against the study's objectives before anything trains."""
    if text == "knee":
        return Rule("knee")
    match = _RULE.fullmatch(text.replace(" ", ""))
    if not match:
        raise UnknownNameError(f"unknown selection rule {text!r}; use {_RULE_FORMS}")
    kind, objective, value, percent = match.groups()
    if objective not in objectives:
        raise UnknownNameError(
            f"selection rule {text!r} names {objective!r}, which is not an objective of this "
            f"study ({', '.join(objectives)})"
        )
    try:
        limit = float(value)
    except ValueError:
        raise UnknownNameError(f"selection rule {text!r}: {value!r} is not a number") from None
    if kind == "within":
        accuracy = objectives[accuracy_index(objectives)]
        if objective != accuracy or not percent:
            raise UnknownNameError(
                f"selection rule {text!r}: within takes the study's accuracy objective and a "
                f"percentage of the full model's, e.g. within:{accuracy}<=2%"
            )
        if not 0 <= limit < math.inf:
            raise UnknownNameError(
                f"selection rule {text!r}: {value}% must be 0 or more, e.g. within:{accuracy}<=2%"
            )
    elif not 0 < limit < math.inf:
        raise UnknownNameError(
            f"selection rule {text!r}: the budget {value}{percent} must be a positive number, "
            "e.g. budget:params<=50%"
        )
    return Rule(kind, objective, limit, bool(percent))


def knee(normalised_front: np.ndarray) -> int:
    """Index of the front point closest (Euclidean) to the ideal point after scaling each
    objective to [0, 1] over the front: the balanced compromise ("compromise programming" with
    the L2 norm). Objectives with no spread on the front are ignored."""
    pts = np.asarray(normalised_front, dtype=float)
    low, high = pts.min(axis=0), pts.max(axis=0)
    spread = np.where(high > low, high - low, np.inf)
    scaled = (pts - low) / spread
    distance = np.sqrt((scaled**2).sum(axis=1))
    return int(np.lexsort((pts[:, 0], distance))[0])


def select(
    rule: Rule,
    objectives: Sequence[str],
    front_values: np.ndarray,
    full_values: Sequence[float],
) -> int | None:
    """Index into the front chosen by `rule`; None when no front point meets a budget."""
    values = np.asarray(front_values, dtype=float)
    if len(values) == 0:
        return None
    accuracy = accuracy_index(objectives)
    if rule.kind == "knee":
        return knee(normalise(values, full_values))
    column = list(objectives).index(rule.objective)
    within = np.flatnonzero(values[:, column] <= limit(rule, objectives, full_values))
    costs = [i for i in range(len(objectives)) if i != accuracy]
    if rule.kind == "within" and len(within) == 0:  # none close enough: the most accurate
        within = np.arange(len(values))
        keys = [*(values[:, i] for i in reversed(costs)), values[:, accuracy]]
    elif rule.kind == "within":
        keys = [values[within, accuracy], *(values[within, i] for i in reversed(costs))]
    elif len(within) == 0:
        return None
    else:
        keys = [values[within, column], values[within, accuracy]]
    return int(within[np.lexsort(keys)[0]])


def limit(rule: Rule, objectives: Sequence[str], full_values: Sequence[float]) -> float:
    """The largest value of `rule.objective` a budget or within rule accepts."""
    full = full_values[list(objectives).index(rule.objective)]
    bound = rule.limit / 100 * full if rule.relative else rule.limit
    return full + bound if rule.kind == "within" else bound  # within: x% worse than the full


def rule_met(
    rule: Rule, objectives: Sequence[str], point: Sequence[float], full_values: Sequence[float]
) -> bool:
    """Whether a selected point meets its rule (a within rule's fallback does not)."""
    if rule.kind == "knee":
        return True
    return point[list(objectives).index(rule.objective)] <= limit(rule, objectives, full_values)
