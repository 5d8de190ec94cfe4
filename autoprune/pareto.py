"""Pareto front, hypervolume and selection rules: pure functions on arrays, no I/O.

All objectives are minimised and normalised by the re-aligned full model, the reference every
trial is compared with (1.0 = as good / as large / as slow as it). The hypervolume reference
point (`hv_reference`) is 1.1 times its error and its costs, so a pruned model adds volume only
if it is cheaper and at most 10% less accurate. Filtering and hypervolume come from `moocore`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import moocore
import numpy as np

from autoprune.errors import UnknownNameError
from autoprune.metrics import METRICS, accuracy_index
from autoprune.registry import Registry

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
    """How one configuration is picked from the front: a registered kind (`RULES`), written
    `kind` or `kind:<objective><=<value>[%]` (% of the re-aligned full model's value)."""

    kind: str
    objective: str | None = None
    limit: float | None = None
    relative: bool = False

    def __str__(self) -> str:
        if self.objective is None:
            return self.kind
        suffix = "%" if self.relative else ""
        return f"{self.kind}:{self.objective}<={self.limit:g}{suffix}"


Pick = Callable[[Rule, Sequence[str], np.ndarray, Sequence[float]], "int | None"]
Check = Callable[[Rule, Sequence[str], str], None]


@dataclass(frozen=True)
class RuleKind:
    pick: Pick  # (rule, objectives, front values, full model's values) -> front index or None
    takes_limit: bool
    check: Check | None  # refuses a bad objective or limit before anything trains
    above_full: bool  # the limit is a margin above the full model's value, not a value itself


RULES: Registry[RuleKind] = Registry("selection rule")


def selection_rule(
    name: str, takes_limit: bool = False, check: Check | None = None, above_full: bool = False
):
    """Register a rule: `@selection_rule("name")` on its pick function."""

    def register(pick: Pick) -> Pick:
        RULES.register(name, RuleKind(pick, takes_limit, check, above_full))
        return pick

    return register


# `search` selects by within:<accuracy><=0% unless told otherwise - the smallest front point
# as accurate as the re-aligned full model on validation, else the most accurate: on the five
# registered datasets it was the rule whose selection most often matched the full model zero-shot
# on test (README, "Front and selection", has the table and the price in parameters)
DEFAULT_WITHIN_PERCENT = 0
_RULE = re.compile(r"([a-z][a-z-]*)(?::([a-z_]+)<=([0-9.eE+-]+)(%?))?")
_RULE_EXAMPLES = "e.g. knee, budget:params<=50% or within:mase<=2%"


def default_rule(objectives: Sequence[str]) -> str:
    accuracy = objectives[accuracy_index(objectives)]
    return f"within:{accuracy}<={DEFAULT_WITHIN_PERCENT}%"


def parse_rule(text: str, objectives: Sequence[str]) -> Rule:
    """A rule from its text, checked against the study's objectives before anything trains."""
    match = _RULE.fullmatch(text.replace(" ", ""))
    if not match or match.group(1) not in RULES:
        raise UnknownNameError(
            f"unknown selection rule {text!r}; use {', '.join(RULES)} ({_RULE_EXAMPLES})"
        )
    kind, objective, value, percent = match.groups()
    if RULES[kind].takes_limit != (objective is not None):
        form = f"{kind}:<objective><=<value>[%]" if RULES[kind].takes_limit else kind
        raise UnknownNameError(f"selection rule {text!r} is written {form}")
    if objective is None:
        return Rule(kind)
    if objective not in objectives:
        raise UnknownNameError(
            f"selection rule {text!r} names {objective!r}, which is not an objective of this "
            f"study ({', '.join(objectives)})"
        )
    try:
        rule = Rule(kind, objective, float(value), bool(percent))
    except ValueError:
        raise UnknownNameError(f"selection rule {text!r}: {value!r} is not a number") from None
    if RULES[kind].check:
        RULES[kind].check(rule, objectives, text)
    return rule


def select(
    rule: Rule,
    objectives: Sequence[str],
    front_values: np.ndarray,
    full_values: Sequence[float],
) -> int | None:
    """Index into the front chosen by `rule`; None when no front point meets it."""
    values = np.asarray(front_values, dtype=float)
    if len(values) == 0:
        return None
    return RULES[rule.kind].pick(rule, objectives, values, full_values)


def limit(rule: Rule, objectives: Sequence[str], full_values: Sequence[float]) -> float:
    """The largest value of `rule.objective` a rule with a limit accepts: the limit itself
    (absolute or % of the full model's), or the full model's value plus it for a rule
    registered `above_full` (`within`)."""
    full = full_values[list(objectives).index(rule.objective)]
    bound = rule.limit / 100 * full if rule.relative else rule.limit
    return full + bound if RULES[rule.kind].above_full else bound


def rule_met(
    rule: Rule, objectives: Sequence[str], point: Sequence[float], full_values: Sequence[float]
) -> bool:
    """Whether a selected point meets its rule (a within rule's fallback does not)."""
    if rule.objective is None:
        return True
    return point[list(objectives).index(rule.objective)] <= limit(rule, objectives, full_values)


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


@selection_rule("knee")
def _knee(rule: Rule, objectives: Sequence[str], values: np.ndarray, full: Sequence[float]) -> int:
    """The balanced compromise (`knee`)."""
    return knee(normalise(values, full))


def _check_budget(rule: Rule, objectives: Sequence[str], text: str) -> None:
    if not 0 < rule.limit < math.inf:
        suffix = "%" if rule.relative else ""
        raise UnknownNameError(
            f"selection rule {text!r}: the budget {rule.limit:g}{suffix} must be a positive "
            "number, e.g. budget:params<=50%"
        )


@selection_rule("budget", takes_limit=True, check=_check_budget)
def _budget(
    rule: Rule, objectives: Sequence[str], values: np.ndarray, full: Sequence[float]
) -> int | None:
    """The most accurate point whose `objective` is within the budget; None if none is."""
    accuracy = accuracy_index(objectives)
    column = list(objectives).index(rule.objective)
    within = np.flatnonzero(values[:, column] <= limit(rule, objectives, full))
    if len(within) == 0:
        return None
    return int(within[np.lexsort([values[within, column], values[within, accuracy]])[0]])


def _check_within(rule: Rule, objectives: Sequence[str], text: str) -> None:
    accuracy = objectives[accuracy_index(objectives)]
    if rule.objective != accuracy or not rule.relative:
        raise UnknownNameError(
            f"selection rule {text!r}: within takes the study's accuracy objective and a "
            f"percentage of the full model's, e.g. within:{accuracy}<=2%"
        )
    if not 0 <= rule.limit < math.inf:
        raise UnknownNameError(
            f"selection rule {text!r}: {rule.limit:g}% must be 0 or more, e.g. "
            f"within:{accuracy}<=2%"
        )


@selection_rule("within", takes_limit=True, check=_check_within, above_full=True)
def _within(
    rule: Rule, objectives: Sequence[str], values: np.ndarray, full: Sequence[float]
) -> int:
    """The cheapest point at most x% less accurate than the re-aligned full model (validation),
    cheapest by the cost objectives in the study's order (`params`, then `latency_ms`), ties by
    accuracy; when no point is that close, the most accurate (`rule_met` says which)."""
    accuracy = accuracy_index(objectives)
    costs = [i for i in range(len(objectives)) if i != accuracy]
    within = np.flatnonzero(values[:, accuracy] <= limit(rule, objectives, full))
    if len(within) == 0:
        within = np.arange(len(values))
        keys = [*(values[:, i] for i in reversed(costs)), values[:, accuracy]]
    else:
        keys = [values[within, accuracy], *(values[within, i] for i in reversed(costs))]
    return int(within[np.lexsort(keys)[0]])
