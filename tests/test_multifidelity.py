import itertools

import numpy as np
import pytest

from autoprune.multifidelity import Pool, choose, expected_improvement, fit_surrogate
from autoprune.pareto import hypervolume, non_dominated

REFERENCE = np.array([2.0, 1.0])


def synthetic_pool(layers=6, seed=0, screen_noise=0.02):
    """Accuracy improves with kept layers, layer 0 matters most; the screen sees it noisily."""
    rng = np.random.default_rng(seed)
    keeps = [k for n in range(1, layers) for k in itertools.combinations(range(layers), n)]
    weight = np.linspace(0.3, 0.05, layers)
    truth = np.array([1.0 + 0.8 * np.exp(-sum(weight[i] for i in k) * 3) for k in keeps]) - 0.1
    screen = 1 + 2.5 * (truth - 0.9) + rng.normal(0, screen_noise, len(keeps))
    costs = np.array([[len(k) / layers] for k in keeps])
    return Pool.build(keeps, costs, screen, layers), truth


def test_choose_never_repeats_and_covers_the_pool():
    pool, truth = synthetic_pool(layers=4)
    observed, busy = {}, {0}
    picks = []
    for _ in range(len(pool.keeps) - 1):
        i = choose(pool, observed, busy, REFERENCE)
        assert i not in observed and i not in busy
        picks.append(i)
        observed[i] = truth[i]
    assert choose(pool, observed, busy, REFERENCE) is None
    assert len(set(picks)) == len(picks)


def test_finds_the_front_fast_when_the_screen_is_good():
    pool, truth = synthetic_pool(layers=6)
    points = np.column_stack([truth, pool.costs])
    true_hv = hypervolume(points[non_dominated(points)], REFERENCE)
    observed = {}
    for _ in range(12):
        i = choose(pool, observed, set(), REFERENCE)
        observed[i] = truth[i]
    found = np.array([np.r_[observed[i], pool.costs[i]] for i in observed])
    assert hypervolume(found[non_dominated(found)], REFERENCE) / true_hv > 0.95


def test_surrogate_learns_from_observations():
    pool, truth = synthetic_pool(layers=5)
    prior = fit_surrogate(pool, {})
    observed = {i: truth[i] for i in range(0, len(truth), 2)}
    post = fit_surrogate(pool, observed)
    unseen = [i for i in range(len(truth)) if i not in observed]
    err_prior = np.abs(prior.mean[unseen] - truth[unseen]).mean()
    err_post = np.abs(post.mean[unseen] - truth[unseen]).mean()
    assert err_post < err_prior
    assert np.all(post.std > 0)


def test_no_improvement_beyond_the_reference():
    pool, truth = synthetic_pool(layers=4)
    pool.costs[:] = 1.0  # as costly as the full model: cannot add volume
    gain = expected_improvement(pool, {}, fit_surrogate(pool, {}), REFERENCE)
    assert np.all(gain == 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_pool_features_are_finite(seed):
    pool, _ = synthetic_pool(layers=5, seed=seed)
    assert np.all(np.isfinite(pool.screen_z)) and pool.layers.shape == (len(pool.keeps), 5)
    assert sum(len(g) for g in pool.groups) == len(pool.keeps)
