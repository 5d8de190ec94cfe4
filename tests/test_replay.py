"""Replaying strategies against a ground-truth table: the numbers the README's search-efficiency
table is made of, checked on a small table whose true front is known by construction."""

import itertools

import numpy as np

from autoprune.replay import Table, run

LAYERS = 5


def table() -> Table:
    """Accuracy improves with kept layers, layer 0 matters most; the screen sees it noisily."""
    rng = np.random.default_rng(0)
    keeps = [k for n in range(1, LAYERS) for k in itertools.combinations(range(LAYERS), n)]
    weight = np.linspace(0.3, 0.05, LAYERS)
    rows = []
    for keep in keeps:
        mase = 1.0 + 0.4 * np.exp(-3 * sum(weight[i] for i in keep))
        rows.append(
            {
                "keep": keep,
                "mase": mase,
                "params": 100 + 50 * len(keep),
                "latency_ms": 2 + len(keep),
                "zs_mase": mase + 0.2 + rng.normal(0, 0.01),
            }
        )
    meta = {
        "objectives": ["mase", "params", "latency_ms"],
        "reference": {"realigned": {"mase": 1.02, "params": 100 + 50 * LAYERS, "latency_ms": 7}},
        "screen_full": {"mase": 1.2},
        "space": {"num_layers": LAYERS, "min_kept": 1, "max_kept": LAYERS - 1, "always_keep": []},
        "priors": {"bi": list(weight)},
    }
    return Table.load(meta, rows)


def test_every_strategy_reaches_the_true_front_when_it_may_train_everything():
    truth = table()
    result = run(truth, seeds=3, budget=len(truth.keeps), log=lambda m: None)
    assert result["true_front_size"] == len(truth.true_front) >= 2
    assert set(result["strategies"]) >= {"random", "tpe", "nsga2", "tpe+bi", "screened"}
    for name, r in result["strategies"].items():
        final = [c[-1] for c in r["curves"]]
        # a seed may stop early by stalling on repeats (as a real study does), never overshoot
        assert max(max(c) for c in r["curves"]) <= 1 + 1e-9, name
        assert all(np.all(np.diff(c) >= -1e-12) for c in r["curves"]), name
        if r["stalled"] == 0:
            assert final == [1.0] * len(final) and r["front_recall_at_budget"] == 1.0, name
    # the deterministic screened sampler is replayed once, the seeded strategies once per seed
    assert len(result["strategies"]["screened"]["curves"]) == 1
    assert len(result["strategies"]["random"]["curves"]) == 3


def test_trials_to_reach_a_level_count_from_the_first_trial():
    truth = table()
    result = run(truth, seeds=2, budget=len(truth.keeps), only=["random"], log=lambda m: None)
    r = result["strategies"]["random"]
    hits = [next(i + 1 for i, v in enumerate(c) if v >= 0.95) for c in r["curves"]]
    assert r["trials_to_95"]["median"] == np.median(hits)
    assert r["trials_to_95"]["reached"] == "2/2"
