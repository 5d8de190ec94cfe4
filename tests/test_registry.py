"""One registry idiom for every extension point: adding a selection rule or a sampler is one
decorated function, and the rest of autoprune (parsing, search, errors, listings) picks it up."""

import numpy as np
import optuna
import pytest

from autoprune.baselines import BASELINES
from autoprune.errors import UnknownNameError
from autoprune.importance import METHODS
from autoprune.models import FAMILIES
from autoprune.pareto import RULES, parse_rule, select, selection_rule
from autoprune.registry import Registry
from autoprune.samplers import SAMPLERS, SamplerContext
from autoprune.search.run import search
from autoprune.study import load_study, trained_trials
from tests.conftest import options, quiet


def test_every_extension_point_is_a_registry_that_names_what_it_knows():
    for registry in (METHODS, SAMPLERS, RULES, BASELINES, FAMILIES):
        assert isinstance(registry, Registry) and len(registry) >= 3
        with pytest.raises(UnknownNameError, match=f"unknown {registry.what} 'nope'; known: "):
            registry.check("nope")
    with pytest.raises(ValueError, match="registered twice"):
        SAMPLERS.register("tpe")(lambda ctx: None)


def test_a_new_selection_rule_is_one_decorated_function():
    @selection_rule("fewest-params")
    def fewest(rule, objectives, values, full):
        return int(np.argmin(values[:, list(objectives).index("params")]))

    try:
        objectives = ["mase", "params"]
        rule = parse_rule("fewest-params", objectives)
        front = np.array([[1.0, 0.9], [1.2, 0.3], [1.1, 0.5]])
        assert str(rule) == "fewest-params" and select(rule, objectives, front, [1, 1]) == 1
        with pytest.raises(UnknownNameError, match="use knee, budget, within, fewest-params"):
            parse_rule("fewest", objectives)
    finally:
        del RULES["fewest-params"]


def test_a_new_sampler_is_one_decorated_function_and_runs_a_study(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    @SAMPLERS.register("all-but-one")
    def all_but_one(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
        """keeps every layer but one, each in turn"""
        return optuna.samplers.BruteForceSampler(seed=ctx.seed)

    try:
        opts = options(tiny_model_dir, tiny_csv, tiny_space, sampler="all-but-one", trials=2)
        search(opts, log=quiet)
        study = load_study("s1", None)
        assert study.user_attrs["autoprune"]["sampler"] == "all-but-one"
        assert len(trained_trials(study)) == 2
    finally:
        del SAMPLERS["all-but-one"]
