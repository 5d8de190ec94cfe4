"""The trial a selection rule picks from the study's front, read from the storage alone."""

from __future__ import annotations

import numpy as np
import optuna

from autoprune.errors import StudyError
from autoprune.export import read_metadata
from autoprune.pareto import Rule, default_rule, parse_rule, select
from autoprune.study import (
    REFERENCE_ATTR,
    SELECTION_ATTR,
    front_of,
    full_values,
    selected_checkpoint,
    settings_of,
)


def study_rule(study: optuna.Study, rule: str | None = None) -> str:
    """The rule to select by after the search: `rule` if given, else the one the stored
    selection was made by, else the default for the study's objectives."""
    stored = (study.user_attrs.get(SELECTION_ATTR) or {}).get("rule")
    return rule or stored or default_rule(settings_of(study)["objectives"])


def choose(study: optuna.Study, rule_text: str) -> tuple[optuna.trial.FrozenTrial, Rule] | None:
    """The front trial `rule` picks, from the storage alone; None before any trial."""
    objectives = settings_of(study)["objectives"]
    rule = parse_rule(rule_text, objectives)
    reference = study.user_attrs.get(REFERENCE_ATTR)
    trials, mask = front_of(study)
    if not reference or not mask.any():
        return None
    front = [t for t, m in zip(trials, mask, strict=True) if m]
    values = np.array([t.values for t in front])
    index = select(rule, objectives, values, full_values(reference, objectives))
    if index is None:
        cheapest = values[values[:, objectives.index(rule.objective)].argmin()]
        described = ", ".join(f"{o}={v:g}" for o, v in zip(objectives, cheapest, strict=True))
        raise StudyError(
            f"no configuration on the front meets {rule}; the cheapest has {described}"
        )
    return front[index], rule


def selection_is_current(study: optuna.Study, rule_text: str) -> bool:
    """Whether the stored selection is what `rule` picks from the front as it is now."""
    previous = study.user_attrs.get(SELECTION_ATTR)
    picked = choose(study, rule_text)
    return bool(
        previous
        and picked
        and previous["trial"] == picked[0].number
        and previous["rule"] == str(picked[1])
        and read_metadata(selected_checkpoint(study))
    )
