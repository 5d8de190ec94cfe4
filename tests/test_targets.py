"""The search-efficiency targets read off replays (`scripts/targets.py`): which sampler is the
yardstick, what a median never reached says, and the verdicts."""

import subprocess
import sys
from pathlib import Path

import pytest

from autoprune.bench.targets import Compute, markdown, targets, yardstick
from autoprune.errors import AutoPruneError


def run(*seeds):
    """A strategy's replay: per seed, (hypervolume ratios, cumulative compute seconds)."""
    return {"curves": [list(c) for c, _ in seeds], "compute_s": [list(s) for _, s in seeds]}


def replay(strategies, truth="truth-m-d.json", noise=0.0, warm=None):
    return {"truth": f"/somewhere/{truth}", "noise": noise, "warm_start_from": warm,
            "strategies": strategies}  # fmt: skip


REACHES = run(([0.5, 0.96, 1.0], [3.0, 9.0, 20.0]))  # 95% at 9 s, 100% at 20 s
GP = run(*[([0.9, 0.97], [10.0, 40.0])] * 3)  # 95% at 40 s on every seed
TPE = run(*[([0.9, 0.95], [10.0, 30.0])] * 3)  # 95% at 30 s
NEVER = run(([0.9, 0.94], [10.0, 50.0]), ([0.9, 0.94], [10.0, 60.0]), ([0.97], [5.0]))


def test_the_yardstick_is_the_best_off_the_shelf_sampler_unless_one_is_named():
    rows = targets([("a", replay({"gp": GP, "tpe": TPE, "screened-mf": REACHES}))])
    (row,) = rows
    assert (row["table"], row["best"], row["best_95"]) == ("truth-m-d.json", "tpe", "30 s")
    assert row["checks"]["95"]["ratio"] == pytest.approx(0.3)
    assert row["checks"]["95"]["verdict"] == "met"
    # to 100% in 20 s against tpe's 30 s to 95%: within it
    assert row["checks"]["100"]["verdict"] == "met"
    (against_gp,) = targets([("a", replay({"gp": GP, "tpe": TPE, "screened-mf": REACHES}))], "gp")
    assert against_gp["best"] == "gp"
    assert against_gp["checks"]["95"]["ratio"] == pytest.approx(9 / 40)
    with pytest.raises(AutoPruneError, match="not an off-the-shelf sampler"):
        targets([("a", replay({"gp": GP}))], "screened")


def test_a_median_most_seeds_never_reached_is_a_bound_and_so_is_its_ratio():
    never = Compute.of(NEVER, 0.95)
    # two of three seeds missed: more than the median of their whole budgets and the hit
    assert (never.seconds, never.exact, str(never)) == (50.0, False, "> 50 s")
    rows = targets([("a", replay({"gp": NEVER, "screened-mf": REACHES}))])
    check = rows[0]["checks"]["95"]
    assert (check["kind"], check["verdict"]) == ("<=", "met (bound)")  # 9 s against > 50 s
    # the default never reaching 100% against an exact yardstick: at least, so not met
    slow = run(([0.5, 0.96], [3.0, 100.0]))
    (row,) = targets([("a", replay({"tpe": TPE, "screened-mf": slow}))])
    assert (row["checks"]["100"]["kind"], row["checks"]["100"]["verdict"]) == (">=", "not met")
    assert row["checks"]["95"]["verdict"] == "not met"  # 100 s against 30 s
    # a bound on both sides decides nothing
    (both,) = targets([("a", replay({"gp": NEVER, "screened-mf": slow}))])
    assert both["checks"]["100"]["verdict"] == "undecided"
    assert "?" in markdown([both])


def test_a_seed_that_missed_counts_as_slower_than_every_seed_that_got_there():
    """Found on a GPSampler replay: a seed that stalls on look-ups misses 95% having spent less
    than the seeds that reached it, and the median must not take its budget for a hit."""
    stalled = ([0.9], [20.0])  # missed 95%, and stopped spending after 20 s
    reached = [([0.9, 0.96], [50.0, s]) for s in (100.0, 150.0, 200.0)]
    gp = run(stalled, stalled, *reached)
    compute = Compute.of(gp, 0.95)
    # the five seeds in order: 100, 150, 200, missed, missed
    assert (compute.seconds, compute.exact, str(compute)) == (200.0, True, "200 s")
    (row,) = targets([("a", replay({"gp": gp, "screened-mf": REACHES}))])
    assert (row["best_95"], row["checks"]["95"]["ratio"]) == ("200 s", pytest.approx(9 / 200))


def test_tables_noise_levels_and_warm_starts_are_kept_apart():
    plain = ("p", replay({"gp": GP, "screened-mf": REACHES}))
    noisy = ("n", replay({"gp": TPE, "screened-mf": REACHES}, noise=0.01))
    warm = run(([0.96], [5.0]))
    warm_a = ("w", replay({"screened+warm": GP, "screened-mf+warm": warm}, warm="etth1"))
    other = ("o", replay({"gp": GP, "screened-mf": REACHES}, truth="truth-m-e.json"))
    rows = targets([plain, noisy, warm_a, other])
    assert [(r["table"], r["noise"]) for r in rows] == [
        ("truth-m-d.json", 0.0),
        ("truth-m-d.json", 0.01),
        ("truth-m-e.json", 0.0),
    ]
    warm_check = rows[0]["checks"]["warm 95 from etth1"]
    assert warm_check["ratio"] == pytest.approx(5 / 40) and warm_check["verdict"] == "met"
    assert "warm 95 from etth1" not in rows[1]["checks"]
    assert "etth1: 5 s, 0.12x, met" in markdown(rows)
    # a warm-started replay's cold strategies are plain replays of its siblings
    both = {"gp": GP, "screened-mf": REACHES, "screened+warm": GP, "screened-mf+warm": warm}
    (row,) = targets([("w", replay(both, warm="etth1"))])
    assert row["checks"]["95"]["ratio"] == pytest.approx(9 / 40)
    assert list(row["checks"]) == ["95", "100", "warm 95 from etth1"]


def test_a_missing_default_or_yardstick_and_a_replay_given_twice_are_said():
    rows = targets([("a", replay({"gp": GP})), ("b", replay({"screened": GP}, truth="t2.json"))])
    by_table = {r["table"]: r["missing"] for r in rows}
    assert by_table == {"truth-m-d.json": "screened-mf", "t2.json": "an off-the-shelf sampler"}
    assert "no replay of screened-mf" in markdown(rows)
    with pytest.raises(AutoPruneError, match="two replays of gp on truth-m-d.json .*: a and b"):
        targets([("a", replay({"gp": GP})), ("b", replay({"gp": TPE}))])
    with pytest.raises(AutoPruneError, match="x is not an `autoprune bench replay` result"):
        targets([("x", {"what": 1})])


def test_an_earlier_replay_serves_as_the_yardstick_beside_todays_default():
    """An earlier day's replay holds the default of its day too: as the yardstick it gives its
    off-the-shelf samplers alone, so today's default is compared with them, not refused as a
    second run of the same strategy."""
    earlier = replay({"gp": GP, "tpe": TPE, "screened-mf": NEVER, "screened": REACHES})
    today = replay({"screened-mf": REACHES})
    with pytest.raises(AutoPruneError, match="two replays of screened-mf"):
        targets([("earlier", earlier), ("today", today)])
    assert sorted(yardstick(earlier)["strategies"]) == ["gp", "tpe"]
    assert earlier["strategies"]["screened-mf"] is NEVER  # the replay read is left as it was
    (row,) = targets([("earlier", yardstick(earlier)), ("today", today)])
    assert (row["best"], row["compared"]) == ("tpe", ["gp", "tpe"])
    assert row["checks"]["95"]["ratio"] == pytest.approx(9 / 30)
    assert yardstick({"what": 1}) == {"what": 1}  # not a replay: `targets` says so


def test_the_script_reproduces_the_readme_targets_table_from_the_shipped_replays():
    """The README's block: today's default's replays (`2026-12-06/screen-back/`) against the
    rebuilt tables' replays of 2026-12-05, read as the yardstick."""
    bench = Path(__file__).parents[1] / "studies/bench"
    rebuilt, today = bench / "2026-12-05/rebuilt", bench / "2026-12-06/screen-back"
    script = Path(__file__).parents[1] / "scripts/targets.py"
    done = subprocess.run(
        [sys.executable, str(script), "--yardstick", str(rebuilt / "cold"), "--yardstick",
         str(rebuilt / "noise"), str(rebuilt / "gp"), str(today / "cold"), str(today / "noise"),
         str(today / "warm")],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    etth1 = next(line for line in done.stdout.splitlines() if "-etth1.json | 0 |" in line)
    assert "| gp 113 s (gp, nsga2, random, tpe) |" in etth1
    assert "| 38 s, 0.34x, not met | 46 s, 0.41x, met |" in etth1
    assert "etth2: 192 s, 1.70x, not met |" in etth1


def test_the_script_reads_the_shipped_replays_as_the_readme_reports_them():
    bench = Path(__file__).parents[1] / "studies/bench/2026-12-02/compute"
    script = Path(__file__).parents[1] / "scripts/targets.py"
    done = subprocess.run(
        [sys.executable, str(script), str(bench), str(bench / "gp"), "--against", "gp"],
        capture_output=True,
        text=True,
        check=True,
    )
    ili = next(line for line in done.stdout.splitlines() if "-ili.json" in line)
    assert "| gp 59 s (gp) | 19 s, 0.32x, met | 32 s, 0.54x, met |" in ili
    missing = subprocess.run(
        [sys.executable, str(script), str(bench / "nothing-here.json")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "cannot read a replay" in missing.stderr
