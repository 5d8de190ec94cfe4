"""Every registered sampler through one suite: same seed -> same keep sets, only valid keep
sets, and a resumed study continues the search instead of replaying its first proposals."""

import numpy as np
import optuna
import pytest

from autoprune.errors import AutoPruneError, UnknownNameError
from autoprune.multifidelity import Pool
from autoprune.objective import suggest_keep
from autoprune.pareto import hv_reference
from autoprune.record import TrialRecord, mark
from autoprune.samplers import SAMPLERS, SamplerContext, Screen, build_sampler
from autoprune.screen import all_keep_sets
from autoprune.space import parse_space

SPACE = parse_space(
    {"model": "m", "num_layers": 6, "always_keep": [0], "min_kept": 2, "max_kept": 4}, "<test>"
)
WEIGHTS = np.array([0.0, 0.25, 0.05, 0.15, 0.1, 0.2])


def accuracy(keep: tuple[int, ...]) -> float:
    """A made-up accuracy ratio (lower is better): layers 1 and 5 matter most."""
    return 1.0 + float(np.exp(-3 * WEIGHTS[list(keep)].sum()))


def screen() -> Screen:
    keeps = all_keep_sets(SPACE)
    costs = np.array([[len(k) / SPACE.num_layers] for k in keeps])
    values = np.array([accuracy(k) for k in keeps]) * 1.05
    pool = Pool.build(keeps, costs, values, SPACE.num_layers)
    reference = hv_reference(("mase", "params"))
    return Screen(pool, np.ones(2), reference, 0)


def run(study: optuna.Study, name: str, seed: int, trials: int) -> list[tuple[int, ...]]:
    """`trials` trials with the sampler built as a study run builds it: seed plus trials stored."""
    study.sampler = build_sampler(name, SamplerContext(seed + len(study.trials), screen, SPACE))
    keeps = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        keep = suggest_keep(trial, SPACE)
        mark(trial, keep=list(keep))
        keeps.append(keep)
        return accuracy(keep), len(keep) / SPACE.num_layers

    study.optimize(objective, n_trials=trials)
    return keeps


def new_study(storage=None) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name="s", directions=["minimize"] * 2)


@pytest.fixture(params=list(SAMPLERS))
def name(request) -> str:
    return request.param


def test_the_same_seed_proposes_the_same_keep_sets(name):
    first, again = run(new_study(), name, 3, 10), run(new_study(), name, 3, 10)
    assert first == again
    if name != "screened":  # the screened sampler is deterministic given the screen
        assert run(new_study(), name, 4, 10) != first


def test_every_keep_set_is_in_the_space(name):
    valid = set(all_keep_sets(SPACE))
    study = new_study()
    keeps = run(study, name, 0, 12)
    assert set(keeps) <= valid
    stored = [TrialRecord.of(t).keep_set for t in study.trials]
    assert stored == keeps


def test_a_resumed_study_goes_on_where_it_stopped(name, tmp_path):
    storage = f"sqlite:///{tmp_path / 'resume.db'}"
    first = run(new_study(storage), name, 0, 6)
    resumed = optuna.load_study(study_name="s", storage=storage)  # another process, say
    more = run(resumed, name, 0, 6)
    assert more != first  # not the first run's proposals again
    assert len(set(first + more)) > len(set(first))
    assert len(resumed.trials) == 12


def test_the_exhaustive_sampler_trains_each_keep_set_of_a_narrow_space_once():
    """The space allows 2-4 of 6 layers: 25 keep sets, where 32 combinations of the 5 droppable
    layers' booleans would repair 7 times to keep sets already taken."""
    study = new_study()
    keeps = run(study, "exhaustive", 0, SPACE.size)
    assert sorted(keeps) == all_keep_sets(SPACE)
    assert keeps != all_keep_sets(SPACE)  # in a drawn order, not the lexicographic one
    assert not any(TrialRecord.of(t).sampled_keep for t in study.trials)  # nothing repaired


def test_the_exhaustive_sampler_trains_again_a_keep_set_whose_trial_was_interrupted():
    """A build stopped by Ctrl-C leaves its trial failed with no reason of its own: resumed, the
    exhaustive sampler proposes that keep set again (before, it counted as taken, and the table
    missed its row). A keep set that failed by itself (a diverged re-alignment) is not retried."""
    study = new_study()
    first = []

    def interrupted(trial: optuna.Trial):
        keep = suggest_keep(trial, SPACE)
        mark(trial, keep=list(keep))
        first.append(keep)
        if len(first) == 1:
            mark(trial, fail_reason="NonFiniteLoss: re-alignment loss became nan at step 3")
            raise RuntimeError("diverged")
        raise KeyboardInterrupt

    study.sampler = build_sampler("exhaustive", SamplerContext(0, screen, SPACE))
    study.optimize(interrupted, n_trials=1, catch=(RuntimeError,))
    with pytest.raises(KeyboardInterrupt):
        study.optimize(interrupted, n_trials=1)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    diverged, cut_short = first
    rest = run(study, "exhaustive", 0, SPACE.size - 1)
    assert sorted(rest) == sorted(set(all_keep_sets(SPACE)) - {diverged})
    assert cut_short in rest


def test_unknown_names_and_missing_screens_say_what_to_do():
    with pytest.raises(UnknownNameError, match="known: tpe, tpe-independent"):
        SAMPLERS.check("tpe2")
    with pytest.raises(AutoPruneError, match="needs the zero-shot screen"):
        build_sampler("screened", SamplerContext(0))
    with pytest.raises(AutoPruneError, match="needs the search space"):
        build_sampler("exhaustive", SamplerContext(0))
