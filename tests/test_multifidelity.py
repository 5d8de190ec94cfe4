import itertools

import numpy as np
import pytest

from autoprune.multifidelity import (
    BROKEN,
    HERMITE,
    Pool,
    Posterior,
    choose,
    expected_improvement,
    fit_surrogate,
)
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


def test_expected_improvement_is_exact():
    """Each candidate's expected gain equals the quadrature of the hypervolume it would add,
    computed point by point: interpolating the gain between the front's accuracies loses
    nothing, whatever the front and however wide the posterior."""
    rng = np.random.default_rng(3)
    layers = 5
    keeps = [k for n in range(1, layers) for k in itertools.combinations(range(layers), n)]
    costs = np.column_stack(
        [[len(k) / layers for k in keeps], [0.2 + 0.7 * len(k) / layers for k in keeps]]
    )
    pool = Pool.build(keeps, costs, rng.uniform(0.9, 1.5, len(keeps)), layers)
    reference = np.array([1.1, 1.0, 1.0])
    observed = {0: 1.08, 6: 1.0, 12: 0.97, 20: 0.99}
    posterior = Posterior(rng.uniform(0.9, 1.1, len(keeps)), rng.uniform(0.001, 0.08, len(keeps)))
    gain = expected_improvement(pool, observed, posterior, reference)
    points = np.array([np.r_[v, pool.costs[i]] for i, v in observed.items()])
    base = hypervolume(points, reference)
    nodes, weights = HERMITE
    for i in range(len(keeps)):
        added = [
            hypervolume(np.vstack([points, np.r_[y, pool.costs[i]]]), reference) - base
            for y in posterior.mean[i] + posterior.std[i] * nodes
        ]
        assert gain[i] == pytest.approx(np.dot(added, weights) / weights.sum(), abs=1e-14)
    assert np.count_nonzero(gain) > 5


@pytest.mark.parametrize("seed", [0, 1])
def test_pool_features_are_finite(seed):
    pool, _ = synthetic_pool(layers=5, seed=seed)
    assert np.all(np.isfinite(pool.screen_z)) and pool.layers.shape == (len(pool.keeps), 5)
    assert sum(len(g) for g in pool.groups) == len(pool.keeps)


def _completed(number, accuracy, cost, rungs):
    """A finished full-budget trial as the study stores it: values and the rungs it recorded."""
    import optuna

    return optuna.trial.create_trial(
        values=[accuracy, cost],
        user_attrs={"keep": [number], "rungs": {str(s): {"mase": v} for s, v in rungs.items()}},
    )


def test_calibration_needs_enough_pairs_and_predicts_the_typical_gain():
    from autoprune.multifidelity import MIN_PAIRS, Calibration

    assert Calibration.fit([(1.5, 1.2)] * (MIN_PAIRS - 1)) is None
    pairs = [(1.5, 1.2), (1.4, 1.12), (1.6, 1.28), (1.45, 1.16)]  # full = 0.8 x rung
    calibration = Calibration.fit(pairs)
    assert calibration.predict(2.0) == pytest.approx(1.6, rel=1e-6)
    assert calibration.sigma < 1e-6
    assert calibration.predict(2.0, sigmas=1.0) <= calibration.predict(2.0)


def test_a_keep_set_goes_on_only_while_it_could_reach_the_front():
    from autoprune.multifidelity import MIN_PAIRS, still_promising

    full, reference = np.ones(2), np.array([1.1, 1.0])
    # full = 0.9 x rung value; the front: accuracy 1.0 at cost 0.5, 0.95 at cost 0.8
    trials = [
        _completed(0, 1.0, 0.5, {3: 1.0 / 0.9}),
        _completed(1, 0.95, 0.8, {3: 0.95 / 0.9}),
        _completed(2, 1.05, 0.6, {3: 1.05 / 0.9}),
        _completed(3, 1.02, 0.7, {3: 1.02 / 0.9}),
    ][: MIN_PAIRS - 1]

    def goes_on(trials, value, cost):
        return still_promising(trials, 3, value, np.array([np.nan, cost]), full, 0, reference)

    hopeless, promising = (1.2 / 0.9, 0.7), (0.9 / 0.9, 0.7)
    assert goes_on(trials, *hopeless)  # too few keep sets seen at both fidelities: go on
    trials = trials + [_completed(3, 1.02, 0.7, {3: 1.02 / 0.9})]
    assert not goes_on(trials, *hopeless)  # predicted 1.2 at cost 0.7: dominated by the front
    assert goes_on(trials, *promising)  # predicted 0.9 at cost 0.7: would be on the front
    assert not goes_on(trials, 1.0 / 0.9, 1.0)  # no cheaper than the full model: no volume
    assert goes_on(trials, 1.0 / 0.9, 0.2)  # cheaper than every front point


def test_keep_sets_stopped_at_a_rung_teach_the_surrogate_but_are_not_proposed_again():
    pool, truth = synthetic_pool(layers=4)
    observed = {i: truth[i] for i in (0, 5, 9)}
    free_before = choose(pool, observed, set(), REFERENCE)
    predicted = {free_before: (truth[free_before], 1e-4)}
    after = choose(pool, observed, set(), REFERENCE, predicted)
    assert after != free_before and after not in observed
    # a prediction moves the posterior like a (noisier) observation
    plain = fit_surrogate(pool, observed)
    taught = fit_surrogate(pool, {**observed, free_before: truth[free_before]}, {free_before: 1e-4})
    error = abs(taught.mean[free_before] - truth[free_before])
    assert error < abs(plain.mean[free_before] - truth[free_before]) or error < 1e-3


def test_a_warm_prior_mean_steers_the_first_proposal():
    from autoprune.multifidelity import ScreenedSampler

    pool, truth = synthetic_pool(layers=4)
    target = int(np.argmin(truth + 0.5 * pool.costs[:, 0]))  # a cheap, accurate keep set
    warm = {pool.keeps[i]: (0.8 if i == target else 1.3) for i in range(len(pool.keeps))}
    reference = np.array([1.1, 1.0])  # as in a study: 10% worse than the full model at most
    sampler = ScreenedSampler(pool, np.ones(2), reference, 0, warm={"other": warm})
    assert sampler.prior is not None and np.argmin(sampler.prior[0]) == target
    assert choose(pool, {}, set(), reference) != target  # without it: the cheapest keep sets
    assert choose(pool, {}, set(), reference, prior=sampler.prior) == target


def test_with_several_warm_studies_the_surrogate_follows_the_one_this_study_resembles():
    """Each finished study is a prior mean of its own; marginal likelihood picks the one that
    predicts this study's trials (averaging them let an unlike study steer the search: in
    replays 1.3x-3.2x the compute of the most alike study alone)."""
    from autoprune.multifidelity import ScreenedSampler

    pool, truth = synthetic_pool(layers=6)
    alike = truth * 1.01
    unlike = 2 * truth.mean() - truth  # ranks every keep set the other way round
    sampler = ScreenedSampler(
        pool,
        np.ones(2),
        REFERENCE,
        0,
        warm={
            name: {k: v for k, v in zip(pool.keeps, w, strict=True)}
            for name, w in (("unlike", unlike), ("alike", alike))
        },
    )
    assert sampler.prior.shape == (2, len(pool.keeps))
    assert sampler.warm_names == ["unlike", "alike"]  # row by row, as trials record them
    before = fit_surrogate(pool, {}, prior=sampler.prior)  # nothing trained yet: their mean
    assert np.allclose(before.mean, sampler.prior.mean(0))
    rng = np.random.default_rng(1)
    observed = {int(i): truth[i] for i in rng.choice(len(pool.keeps), 6, replace=False)}
    both = fit_surrogate(pool, observed, prior=sampler.prior)
    assert np.allclose(both.mean, fit_surrogate(pool, observed, prior=sampler.prior[1]).mean)
    unseen = [i for i in range(len(pool.keeps)) if i not in observed]
    assert np.corrcoef(both.mean[unseen], truth[unseen])[0, 1] > 0.9


def test_the_surrogate_expects_keep_sets_that_drop_more_to_stray_further():
    """Re-aligned accuracy varies far more between keep sets that drop most layers than between
    those that drop one or two (every table in studies/bench); the surrogate learns that spread
    from the trials, so it stays unsure of the small keep sets it has not seen and does not
    spend trials on near-ties among the large ones."""
    layers = 8
    rng = np.random.default_rng(0)
    keeps = [k for n in range(1, layers) for k in itertools.combinations(range(layers), n)]
    dropped = np.array([1 - len(k) / layers for k in keeps])
    truth = 1 + 0.4 * dropped**2 * np.abs(rng.normal(1.0, 1.0, len(keeps)))
    screen = 1 + rng.normal(0, 0.05, len(keeps))  # a screen that knows nothing
    pool = Pool.build(keeps, np.array([[len(k) / layers] for k in keeps]), screen, layers)
    observed = {i: truth[i] for i in range(0, len(keeps), 3)}
    post = fit_surrogate(pool, observed)
    unseen = np.array([i not in observed for i in range(len(keeps))])
    kept = np.array([len(k) for k in keeps])
    small, large = post.std[unseen & (kept <= 2)].mean(), post.std[unseen & (kept >= 6)].mean()
    assert large < small / 3


def test_a_stall_counts_the_trained_trials_in_a_row_that_added_no_hypervolume():
    from autoprune.multifidelity import stalled_for

    full, reference = np.ones(2), np.array([1.1, 1.0])
    steps = [
        (1.0, 0.5),  # the first point inside the box: adds volume
        (1.05, 0.6),  # dominated
        (1.0, 0.5),  # a tie adds nothing
        (1.2, 0.1),  # outside the reference box (accuracy past 1.1x)
        (0.9, 1.0),  # on the box's edge: no volume
    ]
    trials = [_completed(i, a, c, {}) for i, (a, c) in enumerate(steps)]
    assert [stalled_for(trials[: n + 1], full, reference) for n in range(5)] == [0, 1, 2, 3, 4]
    assert stalled_for([*trials, _completed(5, 1.08, 0.2, {})], full, reference) == 0
    assert stalled_for([], full, reference) == 0


def test_once_the_front_stalls_the_sampler_proposes_without_the_screen():
    """The screen steers the surrogate until STALL trained trials in a row add no hypervolume;
    then its proposals ignore it (a misleading screen no longer pins them to one region) and
    each says so on its trial, until SCREEN_BACK in a row have added none: then neither guide
    is the better, and the screen is back."""
    import optuna

    from autoprune.multifidelity import SCREEN_BACK, STALL, ScreenedSampler

    pool, truth = synthetic_pool(layers=6)
    reversed_screen = Pool.build(pool.keeps, pool.costs, pool.screen[::-1], 6)
    observed = {i: truth[i] for i in range(0, len(pool.keeps), 7)}
    blind = [fit_surrogate(p, observed, screened=False).mean for p in (pool, reversed_screen)]
    assert np.allclose(*blind)  # without the screen, no screen changes a posterior
    seeing = [fit_surrogate(p, observed).mean for p in (pool, reversed_screen)]
    assert not np.allclose(*seeing)

    def proposed_after(stalled: int, pool: Pool = pool) -> dict:
        study = optuna.create_study(
            directions=["minimize"] * 2,
            sampler=ScreenedSampler(pool, np.ones(2), REFERENCE, 0),
        )
        # one trial at the best accuracy and the least cost, then ones it dominates
        first = [truth.min(), pool.costs.min()]
        worse = np.argsort(truth)[1 : stalled + 1]
        for i, values in [(0, first), *((i, [truth[i], pool.costs[i, 0]]) for i in worse)]:
            keep = {"keep": list(pool.keeps[i])}
            study.add_trial(optuna.trial.create_trial(values=values, user_attrs=keep))
        study.ask()
        return study.trials[-1].user_attrs  # as stored

    assert "unscreened" not in proposed_after(STALL - 1)
    assert proposed_after(STALL).get("unscreened") is True
    assert proposed_after(SCREEN_BACK - 1).get("unscreened") is True
    assert "unscreened" not in proposed_after(SCREEN_BACK)
    # a screen skipped or turned off (every keep set alike) has nothing to drop
    blank = Pool.build(pool.keeps, pool.costs, np.ones(len(pool.keeps)), 6)
    assert "unscreened" not in proposed_after(STALL, blank)


def test_a_broken_keep_set_does_not_pull_its_neighbours():
    """A keep set 60x worse than the full model (Chronos-Bolt without a decoder block) is fitted
    as BROKEN times: its neighbours' posterior is the one a merely bad keep set gives them, not
    one that makes them look broken too."""
    pool, truth = synthetic_pool(layers=5)
    observed = {i: truth[i] for i in range(0, len(truth), 3)}
    broken = next(i for i in observed if len(pool.keeps[i]) == 1)
    neighbours = [
        i
        for i, k in enumerate(pool.keeps)
        if i not in observed and len(set(k) ^ set(pool.keeps[broken])) == 1
    ]
    as_broken = fit_surrogate(pool, {**observed, broken: 60.0})
    as_ceiling = fit_surrogate(pool, {**observed, broken: BROKEN})
    assert np.allclose(as_broken.mean, as_ceiling.mean)
    assert np.allclose(as_broken.std, as_ceiling.std)
    assert np.all(as_broken.mean[neighbours] < BROKEN)
