"""Replaying strategies against a ground-truth table: the numbers the README's search-efficiency
table is made of, checked on a small table whose true front is known by construction."""

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from autoprune.bench.replay import Table, paired, replay_truth, run
from autoprune.errors import AutoPruneError

LAYERS = 5


def table(layers: int = LAYERS, floor: float = 1.0) -> Table:
    """Accuracy improves with kept layers towards `floor`, layer 0 matters most; the screen sees
    it noisily."""
    rng = np.random.default_rng(0)
    keeps = [k for n in range(1, layers) for k in itertools.combinations(range(layers), n)]
    weight = np.linspace(0.3, 0.05, layers)
    rows = []
    for keep in keeps:
        mase = floor + 0.4 * np.exp(-3 * sum(weight[i] for i in keep))
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
        "reference": {"realigned": {"mase": 1.02, "params": 100 + 50 * layers, "latency_ms": 7}},
        "screen_full": {"mase": 1.2},
        "space": {"num_layers": layers, "min_kept": 1, "max_kept": layers - 1, "always_keep": []},
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


def test_compute_is_what_a_strategy_ran_and_multi_fidelity_stops_pay_their_rung():
    """A single-fidelity strategy pays each trained keep set's full cost; the multi-fidelity one
    pays the screen once, the rung for a keep set it stops, the full cost with the rungs for the
    rest; its hypervolume counts only keep sets trained to the full budget."""
    truth = table()
    n = len(truth.keeps)
    kept = np.array([len(k) for k in truth.keeps], dtype=float)
    truth.rungs = {1: truth.values[:, 0] * (1.3 - 0.05 * kept)}  # a noisy, informative rung
    truth.costs = {"r1": 0.3 * kept, "full": kept, "full_mf": kept + 0.1}
    truth.screen_cost = 5.0
    from autoprune.bench.replay import replay_one, strategies

    known = strategies(truth)
    assert "screened-mf" in known
    curve, compute, _, trained = replay_one(truth, known["random"], 0, n)
    index = {k: i for i, k in enumerate(truth.keeps)}
    assert compute == list(np.cumsum([truth.costs["full"][index[k]] for k in trained]))
    ledger = []
    curve, compute, _, trained = replay_one(truth, known["screened-mf"], 0, n, ledger)
    assert curve[-1] == 1.0 and len(compute) == len(trained) == len(curve)
    full_cost = sum(truth.costs["full_mf"][index[k]] for k in trained)
    stopped = compute[-1] - truth.screen_cost - full_cost
    rung_costs = {round(c, 6) for c in truth.costs["r1"]}
    assert stopped >= 0 and (stopped == 0 or stopped > min(rung_costs) - 1e-9)
    # the ledger holds every charge in order: the screen first, then each keep set's
    assert ledger[0] == (None, "screen", truth.screen_cost)
    assert [k for k, charge, _ in ledger if charge == "full"] == trained
    for keep, charge, cost in ledger[1:]:
        assert cost == truth.costs["r1" if charge == "stopped" else "full_mf"][index[keep]]
    assert sum(cost for _, _, cost in ledger) == pytest.approx(compute[-1])


def test_a_table_with_each_rungs_evaluation_charges_a_stop_rule_only_the_rungs_it_evaluates():
    """Since stop 52 a table holds each rung's evaluation seconds: the product's stop rule
    evaluates only the rung it stops at, so its trials are charged that evaluation alone, on
    the way to the full budget and when stopped; MOASHA evaluates every rung and pays them all;
    a table without those columns charges every rung's, as it was measured."""
    from autoprune.bench.replay import replay_one, strategies

    truth = table()
    n = len(truth.keeps)
    kept = np.array([len(k) for k in truth.keeps], dtype=float)
    truth.rungs = {1: truth.values[:, 0] * (1.3 - 0.05 * kept), 3: truth.values[:, 0] * 1.1}
    e1, e3 = 0.01 * kept, 0.02 * kept  # each rung's evaluation
    truth.costs = {
        "r1": 0.2 * kept + e1,
        "r3": 0.5 * kept + e1 + e3,
        "full": kept,
        "full_mf": kept + e1 + e3,
        "eval_r1": e1,
        "eval_r3": e3,
    }
    assert truth.charges_each_rung
    index = {k: i for i, k in enumerate(truth.keeps)}
    known = strategies(truth)
    for name, expected in (("screened-mf", {"full": kept + e3, "stopped3": 0.5 * kept + e3}),
                           ("moasha", {"full": kept + e1 + e3, "stopped1": 0.2 * kept + e1,
                                       "stopped3": 0.5 * kept + e1 + e3})):  # fmt: skip
        ledger = []
        replay_one(truth, known[name], 0, n, ledger)
        charged = [(k, c, cost) for k, c, cost in ledger if c != "screen"]
        charges = {c for _, c, _ in charged}
        assert charges == {"stopped", "full"}
        for keep, charge, cost in charged:
            i = index[keep]
            options = (
                [expected["full"][i]]
                if charge == "full"
                else [v[i] for key, v in expected.items() if key.startswith("stopped")]
            )
            assert any(cost == pytest.approx(o) for o in options), (name, keep, charge, cost)
    # the same table without the columns: every rung's evaluation, as the table measured it
    del truth.costs["eval_r1"], truth.costs["eval_r3"]
    assert not truth.charges_each_rung
    ledger = []
    replay_one(truth, known["screened-mf"], 0, n, ledger)
    for keep, charge, cost in ledger:
        if charge == "full":
            assert cost == pytest.approx(truth.costs["full_mf"][index[keep]])
        elif charge == "stopped":
            assert cost == pytest.approx(truth.costs["r3"][index[keep]])


def test_hv_without_says_which_front_keep_set_a_level_hinges_on():
    """Without a front keep set no other can replace, less than the whole hypervolume is
    reachable; a front keep set that an equal other replaces costs nothing."""
    truth = table()
    without = truth.hv_without()
    assert set(without) == {" ".join(map(str, k)) for k in truth.true_front}
    assert all(0 < v <= 1 for v in without.values())
    assert min(without.values()) < 1  # some front keep set has no stand-in of its size
    twin = max(truth.true_front, key=len)
    i = truth.keeps.index(twin)
    truth.keeps.append(tuple(sorted(set(range(LAYERS)) - {twin[0]})))  # same size, same values
    truth.values = np.vstack([truth.values, truth.values[i]])
    assert truth.hv_without()[" ".join(map(str, twin))] == 1.0


def test_noise_replays_every_strategy_on_its_own_sibling_table_per_seed():
    """With noise, seed s of every strategy meets the same sibling table (accuracies perturbed,
    true front recomputed), the deterministic screened sampler included; without, the table."""
    truth = table()
    a, b = truth.perturbed(1, 0.02), truth.perturbed(1, 0.02)
    assert np.array_equal(a.values, b.values) and a.true_front == b.true_front
    assert not np.array_equal(a.values[:, 0], truth.values[:, 0])
    assert np.array_equal(a.values[:, 1:], truth.values[:, 1:])  # costs are not re-aligned
    spread = np.log(a.values[:, 0] / truth.values[:, 0])
    assert 0.01 < spread.std() < 0.04
    shaken = [truth.perturbed(s, 0.05) for s in range(8)]
    assert len({frozenset(t.true_front) for t in shaken}) > 1  # near-ties flip between siblings
    assert truth.perturbed(3, 0.0) is truth  # without noise, every seed meets the table itself

    result = run(truth, seeds=3, budget=len(truth.keeps), log=lambda m: None, noise=0.05)
    assert result["noise"] == 0.05
    screened = result["strategies"]["screened"]["curves"]
    assert len(screened) == 3 and len({tuple(c) for c in screened}) > 1
    for name, r in result["strategies"].items():
        assert max(max(c) for c in r["curves"]) <= 1 + 1e-9, name
    assert run(truth, seeds=3, budget=5, only=["screened"], log=lambda m: None)["noise"] == 0


def test_replay_truth_names_a_noisy_replay_apart_and_refuses_a_nonsense_noise(tmp_path):
    truth = Path(__file__).parents[1] / "studies/bench/truth-moirai-tiny-8-ili.json"
    quiet = dict(log=lambda m: None)
    target, png = replay_truth(truth, 2, 5, ["random"], tmp_path, noise=0.01, **quiet)
    assert target.name == "replay-moirai-tiny-8-ili-noise0.01.json" and png.is_file()
    assert json.loads(target.read_text())["noise"] == 0.01
    with pytest.raises(AutoPruneError, match="--noise 2.0 must be in"):
        replay_truth(truth, 2, 5, ["random"], tmp_path, noise=2.0, **quiet)


def test_paired_compares_compute_seed_by_seed_and_counts_a_miss_as_its_whole_budget():
    def replay(curves, compute_s):
        return {
            "truth": "t.json",
            "seeds": 2,
            "noise": 0.01,
            "warm_start_from": None,
            "strategies": {"s": {"curves": curves, "compute_s": compute_s}},
        }

    base = replay([[0.5, 0.96], [0.97]], [[1.0, 2.0], [4.0]])
    new = replay([[0.9], [0.5, 0.99]], [[3.0], [1.0, 2.0]])
    levels = paired(base, new, "s")["levels"]
    # 95%: seed 0 never got there in `new` (its budget, 3 s, against 2 s), seed 1 in 2 s against 4
    assert levels["95"]["geometric_mean_ratio"] == pytest.approx(np.sqrt(1.5 * 0.5), abs=1e-3)
    assert [levels["95"][k] for k in ("new_less", "new_more", "censored")] == [1, 1, 1]
    assert levels["90"]["geometric_mean_ratio"] == pytest.approx(np.sqrt(1.5 * 0.5), abs=1e-3)
    assert levels["100"] == {
        "geometric_mean_ratio": None,
        "new_less": 0,
        "new_more": 0,
        "seeds": 0,
        "censored": 0,
    }
    # from seed 1 onward: only the seed `new` won, in 2 s against 4
    later = paired(base, new, "s", first_seed=1)
    assert later["first_seed"] == 1
    assert later["levels"]["95"]["geometric_mean_ratio"] == pytest.approx(0.5)
    assert [later["levels"]["95"][k] for k in ("new_less", "new_more", "seeds")] == [1, 0, 1]
    with pytest.raises(AutoPruneError, match="first seed 2 is not among the replays' 2 seed"):
        paired(base, new, "s", first_seed=2)


def test_paired_needs_the_same_siblings_in_both_replays():
    truth = table()
    quiet = dict(log=lambda m: None)
    noisy = run(truth, seeds=3, budget=10, only=["screened", "random"], noise=0.05, **quiet)
    same = paired(noisy, noisy, "random")["levels"]
    assert all(
        r["geometric_mean_ratio"] in (1.0, None) and r["new_less"] == 0 for r in same.values()
    )
    assert paired(noisy, noisy, "random", "screened")["new"] == "screened"
    # one table named from two places is the same table
    here, there = {**noisy, "truth": "t.json"}, {**noisy, "truth": "/elsewhere/t.json"}
    assert paired(here, there, "random")["levels"]["95"]["new_more"] == 0
    # the same siblings whatever the warm start: the result says which each had
    warm = paired(here, {**there, "warm_start_from": "a+b"}, "random")
    assert warm["warm_start_from"] == [None, "a+b"]
    with pytest.raises(AutoPruneError, match="differ in truth"):
        paired(here, {**noisy, "truth": "u.json"}, "random")
    other = run(truth, seeds=3, budget=10, only=["random"], noise=0.02, **quiet)
    with pytest.raises(AutoPruneError, match="differ in noise"):
        paired(noisy, other, "random")
    plain = run(truth, seeds=3, budget=10, only=["screened", "random"], **quiet)
    with pytest.raises(AutoPruneError, match="ran 1 seed"):
        paired(plain, plain, "screened", "random")
    with pytest.raises(AutoPruneError, match="not in that replay; it has: random, screened"):
        paired(noisy, noisy, "tpe")


def test_a_replay_warm_starts_from_several_tables_one_prior_each(tmp_path):
    shipped = Path(__file__).parents[1] / "studies/bench"
    truth, *sources = (shipped / f"truth-moirai-tiny-8-{d}.json" for d in ("ili", "etth1", "etth2"))
    quiet = dict(log=lambda m: None)
    target, _ = replay_truth(truth, 1, 3, ["screened+warm"], tmp_path, sources, **quiet)
    assert target.name == "replay-moirai-tiny-8-ili-warm-etth1+etth2.json"
    replayed = json.loads(target.read_text())
    assert replayed["warm_start_from"] == "etth1+etth2"
    assert len(replayed["strategies"]["screened+warm"]["curves"][0]) == 3
    with pytest.raises(AutoPruneError, match="is not a truth table file"):
        replay_truth(truth, 1, 3, ["screened+warm"], tmp_path, [tmp_path / "nope.json"], **quiet)
    with pytest.raises(AutoPruneError, match="is the replayed table itself"):
        replay_truth(truth, 1, 3, ["screened+warm"], tmp_path, [sources[0], truth], **quiet)


def test_a_warm_start_table_is_of_the_same_model_by_its_weights_whatever_its_path(tmp_path):
    shipped = Path(__file__).parents[1] / "studies/bench"

    def copy(dataset: str, model: str, digest: str | None) -> Path:
        source = shipped / f"truth-moirai-tiny-8-{dataset}.json"
        meta = json.loads(source.read_text()) | {"model": model, "weights_sha256": digest}
        target = tmp_path / source.name
        target.write_text(json.dumps(meta))
        shutil.copy(source.with_suffix(".csv"), target.with_suffix(".csv"))
        return target

    truth = copy("ili", "/built/here/moirai-tiny-8", "a" * 64)
    quiet = dict(log=lambda m: None)
    moved = copy("etth1", "/built/elsewhere/moirai-tiny-8", "a" * 64)
    replay_truth(truth, 1, 3, ["screened+warm"], tmp_path, [moved], **quiet)
    for model, digest in (("/built/here/moirai-tiny-8", "b" * 64), ("/built/elsewhere/x", None)):
        other = copy("etth1", model, digest)
        with pytest.raises(AutoPruneError, match="a warm start needs the same model"):
            replay_truth(truth, 1, 3, ["screened+warm"], tmp_path, [other], **quiet)


def test_the_printed_summary_says_a_level_most_seeds_never_reached_in_words():
    lines = []
    run(table(), seeds=2, budget=2, only=["random"], log=lines.append)
    summary = next(line for line in lines if "random (median)" in line)
    assert "100% not reached by most seeds (0/2)" in summary and "None" not in summary


def test_a_strategy_the_table_cannot_replay_says_what_it_needs():
    truth = table()  # no rungs: built as before rungs existed
    with pytest.raises(AutoPruneError, match="rung fidelities.*bench truth"):
        run(truth, seeds=1, budget=3, only=["screened-mf"], log=lambda m: None)
    with pytest.raises(AutoPruneError, match="'moasha' needs the table's rung fidelities"):
        run(truth, seeds=1, budget=3, only=["moasha"], log=lambda m: None)
    for name in ("gp-mf", "unscreened-mf"):
        with pytest.raises(AutoPruneError, match=f"'{name}' needs the table's rung fidelities"):
            run(truth, seeds=1, budget=3, only=[name], log=lambda m: None)
    with pytest.raises(AutoPruneError, match="needs --warm-start TABLE"):
        run(truth, seeds=1, budget=3, only=["screened+warm"], log=lambda m: None)
    with pytest.raises(AutoPruneError, match="unknown replay strategy 'tpe2'; known: random"):
        run(truth, seeds=1, budget=3, only=["tpe2"], log=lambda m: None)


def test_a_table_no_keep_set_of_which_reaches_the_reference_point_is_refused_in_words():
    """E.g. a random model's table: every pruned keep set far above the full model. Its true
    hypervolume is 0, and a replay said so with a ZeroDivisionError."""
    worse = table(floor=1.2)  # every keep set above 1.1x the full model's 1.02
    assert worse.true_hv == 0
    with pytest.raises(AutoPruneError, match="true hypervolume is 0"):
        run(worse, seeds=1, budget=3, log=lambda m: None)


def test_priority_order_sorts_fronts_and_spreads_each_front_from_its_most_accurate_point():
    from autoprune.bench.replay import priority_order

    points = np.array(
        [
            [1.0, 3.0],  # front 1, most accurate
            [2.0, 2.0],  # front 1, between
            [3.0, 1.0],  # front 1, cheapest
            [2.5, 2.5],  # dominated by [2, 2]: front 2
            [3.5, 3.5],  # front 3
        ]
    )
    # within the first front the farthest from [1, 3] is [3, 1], then [2, 2]
    assert priority_order(points).tolist() == [0, 2, 1, 3, 4]


def test_successive_halving_stops_a_keep_set_outside_the_best_third_at_a_rung():
    """MOASHA's stopping rule: the first keep set a rung sees goes on; later ones go on only
    among the best 1/3 of those the rung recorded, and each rung ranks on its own values."""
    from autoprune.bench.replay import SuccessiveHalving

    truth = table()
    n = len(truth.keeps)
    truth.rungs = {1: np.linspace(2.0, 1.0, n), 3: np.linspace(2.0, 1.0, n)}
    same_cost = np.ones_like(truth.values)  # equal costs: only the rung's accuracy ranks
    rule = SuccessiveHalving()
    decide = [rule(truth, None, i, same_cost[i]) for i in (n - 1, 0, n - 2)]
    # the best first: on through both rungs; the worst: 2nd of 2 at rung 1, stopped there; the
    # second best: 2nd of 3 at rung 1 (within the best third), on; 2nd of 2 at rung 3, stopped
    assert decide == [None, 1, 3]
    assert [len(rule.recorded[steps]) for steps in (1, 3)] == [3, 2]  # a stopped one stops there


def test_moasha_replays_random_search_with_successive_halving_and_pays_each_rung_it_reached():
    from autoprune.bench.replay import replay_one, strategies

    truth = table()
    n = len(truth.keeps)
    kept = np.array([len(k) for k in truth.keeps], dtype=float)
    truth.rungs = {1: truth.values[:, 0] * (1.3 - 0.05 * kept), 3: truth.values[:, 0] * 1.1}
    truth.costs = {"r1": 0.2 * kept, "r3": 0.5 * kept, "full": kept, "full_mf": kept + 0.1}
    known = strategies(truth)
    assert {"moasha", "screened+moasha"} <= set(known)
    ledger = []
    curve, compute, _, trained = replay_one(truth, known["moasha"], 0, n, ledger)
    stops = [(k, cost) for k, charge, cost in ledger if charge == "stopped"]
    index = {k: i for i, k in enumerate(truth.keeps)}
    assert stops and len(trained) + len(stops) == len(ledger)  # random: no screen to pay
    for keep, cost in stops:  # stopped at the first rung or the second, and charged for it
        assert cost in (truth.costs["r1"][index[keep]], truth.costs["r3"][index[keep]])
    assert not {k for k, _ in stops} & set(trained)  # a stopped keep set is never trained
    last = max(i for i, (_, charge, _) in enumerate(ledger) if charge == "full")
    assert compute[-1] == pytest.approx(sum(cost for _, _, cost in ledger[: last + 1]))


def test_the_default_sampler_without_its_screen_pays_none_and_is_replayed_only_when_named():
    truth = table()
    n = len(truth.keeps)
    kept = np.array([len(k) for k in truth.keeps], dtype=float)
    truth.rungs = {1: truth.values[:, 0] * (1.3 - 0.05 * kept)}
    truth.costs = {"r1": 0.3 * kept, "full": kept, "full_mf": kept + 0.1}
    truth.screen_cost = 5.0
    from autoprune.bench.replay import replay_one, strategies

    known = strategies(truth)
    ledger = []
    curve, compute, _, trained = replay_one(truth, known["unscreened-mf"], 0, n, ledger)
    assert curve[-1] == 1.0 and all(charge != "screen" for _, charge, _ in ledger)
    assert sum(cost for _, _, cost in ledger) == pytest.approx(compute[-1])
    default = run(truth, seeds=1, budget=n, log=lambda m: None)["strategies"]
    assert "unscreened-mf" not in default and "screened-mf" in default
    named = run(truth, seeds=1, budget=n, only=["unscreened-mf"], log=lambda m: None)
    assert list(named["strategies"]) == ["unscreened-mf"]


def test_gp_with_the_rung_replays_what_search_sampler_gp_runs_and_only_when_named():
    """`search --sampler gp` is multi-fidelity by default: Optuna's GPSampler proposes, the
    product's rule stops a keep set at the rung. `gp-mf` replays exactly that: a stopped keep
    set pays its rung, a trained one its multi-fidelity full budget, and it is replayed only
    when named (GPSampler refits every trial)."""
    from autoprune.bench.replay import replay_one, strategies

    truth = table()
    n = len(truth.keeps)
    kept = np.array([len(k) for k in truth.keeps], dtype=float)
    truth.rungs = {1: truth.values[:, 0] * (1.3 - 0.05 * kept)}
    truth.costs = {"r1": 0.3 * kept, "full": kept, "full_mf": kept + 0.1}
    index = {k: i for i, k in enumerate(truth.keeps)}
    ledger = []
    curve, compute, _, trained = replay_one(truth, strategies(truth)["gp-mf"], 0, n, ledger)
    assert curve[-1] == 1.0 and all(charge != "screen" for _, charge, _ in ledger)
    stops = [keep for keep, charge, _ in ledger if charge == "stopped"]
    assert stops  # the rule stopped some once calibrated: a single-fidelity GP would not
    for keep, charge, cost in ledger:
        paid = {"stopped": truth.costs["r1"], "full": truth.costs["full_mf"]}[charge]
        assert cost == pytest.approx(paid[index[keep]])
    assert sum(cost for _, _, cost in ledger) == pytest.approx(compute[-1])
    assert "gp-mf" not in run(truth, seeds=1, budget=4, log=lambda m: None)["strategies"]
    named = run(truth, seeds=1, budget=8, only=["gp-mf"], log=lambda m: None)
    assert list(named["strategies"]) == ["gp-mf"]


def test_a_replay_goes_without_a_screen_that_search_would_skip_and_pays_what_search_spends():
    """`bench replay` decides the zero-shot screen as `search --screen auto` does: past a
    twentieth of the budget's trials at the full model's trial, the screened strategies go on
    without it, as `--screen off` does, and pay only the first keep sets from which `search`
    projected it; `--screen on` pays and reads it whatever it costs; a seed taken from the screen
    (`tpe+screen`) pays the whole screen."""
    from autoprune.bench.replay import ScreenRun, replay_one, strategies

    truth = table(layers=8)  # 254 keep sets: more than the stretch a screen is projected from
    truth.costs = {"full": np.array([len(k) for k in truth.keeps], dtype=float)}
    truth.screen_cost = 30.0  # the full model's trial: 8 s, so 0.4 s of screen per trial
    assert truth.full_trial_s == pytest.approx(8.0)
    skipped, screened = ScreenRun.decide(truth, 50), ScreenRun.decide(truth, 100)
    assert not skipped.ran and skipped.allowed_s == pytest.approx(20.0)
    assert 0 < skipped.charged_s < 30.0 / 2
    assert screened.ran and screened.charged_s == 30.0
    assert "Zero-shot screen skipped" in skipped.said() and "20 s allowed" in skipped.said()

    known = strategies(truth)
    runs = {}
    for mode in ("auto", "off", "on"):
        ledger = []
        decided = ScreenRun.decide(truth, 50, mode)
        trained = replay_one(truth, known["screened"], 0, 50, ledger, decided)[3]
        runs[mode] = (trained, [cost for keep, _, cost in ledger if keep is None])
    assert runs["auto"] == (runs["off"][0], [pytest.approx(skipped.charged_s)])
    assert runs["off"][1] == [] and runs["on"][1] == [30.0]
    assert runs["on"][0] != runs["off"][0]  # the screen, read, changes what is proposed
    ledger = []
    replay_one(truth, known["tpe+screen"], 0, 20, ledger)
    assert [cost for keep, _, cost in ledger if keep is None] == [30.0]
    result = run(truth, seeds=1, budget=50, only=["screened"], log=lambda m: None)
    assert result["screen"]["ran"] is False and result["screen"]["allowed_s"] == pytest.approx(20)
    truth.meta["seconds"] = {"full_trial": 4.0}  # a table that recorded it: that, not the line
    assert not ScreenRun.decide(truth, 100).ran


def test_bench_replay_takes_the_screen_choices_of_search(tmp_path):
    from autoprune.cli import SCREEN_MODES, main
    from autoprune.search.options import SCREENS

    assert SCREEN_MODES == SCREENS
    truth = Path(__file__).resolve().parents[1] / "studies/bench/2026-12-02"
    args = ["bench", "replay", "--truth", str(truth / "truth-moirai-tiny-8-ili.json")]
    args += ["--seeds", "1", "--strategy", "screened", "--out", str(tmp_path)]
    assert main([*args, "--screen", "off"]) == 0
    written = json.loads(next(tmp_path.glob("replay-*.json")).read_text())
    assert written["screen"] == {
        "mode": "off",
        "ran": False,
        "charged_s": 0.0,
        "whole_s": written["screen_cost_s"],
        "allowed_s": None,
    }
    with pytest.raises(SystemExit):
        main([*args, "--screen", "sometimes"])


def test_a_replay_reports_each_strategys_seeds_as_they_finish():
    truth = table()
    calls = []
    run(
        truth,
        seeds=2,
        budget=5,
        only=["random", "screened"],
        log=lambda m: None,
        on_seed=lambda *call: calls.append(call),
    )
    # the seed-free screened sampler is replayed once
    assert calls == [
        ("random", 0, 2),
        ("random", 1, 2),
        ("random", 2, 2),
        ("screened", 0, 1),
        ("screened", 1, 1),
    ]


def test_a_partial_table_replays_only_the_strategies_that_propose_from_its_keep_sets():
    whole = table()
    rng = np.random.default_rng(1)
    sample = sorted(rng.choice(len(whole.keeps), size=12, replace=False))
    part = Table.load(
        whole.meta,
        [
            {"keep": whole.keeps[i], "mase": whole.values[i, 0] * 1.02, "zs_mase": 1.2}
            | dict(zip(["params", "latency_ms"], whole.values[i, 1:] * [350, 7], strict=True))
            for i in sample
        ],
    )
    assert part.partial and not whole.partial
    lines = []
    result = run(part, seeds=2, budget=len(part.keeps), log=lines.append)
    assert set(result["strategies"]) == {"screened"}  # a sample without rungs
    assert "replaying screened" in lines  # not gp, nor unscreened-mf (no rungs): not here
    assert any("holds 12 of its space's 30 keep sets" in line for line in lines)
    # the screened sampler's pool is the table: it trains every keep set, and finds its front
    assert result["strategies"]["screened"]["curves"][0][-1] == pytest.approx(1.0)
    for name in ("tpe", "random", "tpe+bi", "tpe+screen"):
        with pytest.raises(AutoPruneError, match=re.escape(f"'{name}' proposes keep sets from")):
            run(part, seeds=1, budget=3, only=[name], log=lambda m: None)
