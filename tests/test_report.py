"""What the report tells a user: test metrics of the front on request, a plain sentence when the
selection is worse on test than the full model zero-shot, latencies measured under another load
flagged, and every metric's scale."""

import csv
import json

import numpy as np
import pytest

import autoprune.objective as objective_module
import autoprune.search.finalize as finalize_module
from autoprune.cli import main
from autoprune.metrics import METRICS
from autoprune.objective import latency_off_profile
from autoprune.record import TrialRecord
from autoprune.report import (
    collect,
    compute_line,
    counted,
    findings,
    first_held,
    settled_at,
    still_growing,
    write_report,
)
from autoprune.search.cached import front_test
from autoprune.search.options import prepared_from_study
from autoprune.search.run import search
from autoprune.study import FRONT_TEST_ATTR, keep_key, load_study, trained_trials
from tests.conftest import options, quiet


def test_front_test_metrics_are_offered_then_computed_once_and_reproduce_the_selection(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, threads=1, trials=4), log=quiet)
    study = load_study("s1")
    summary = collect(study)
    selection = summary["selection"]
    # the selection's test metrics are known from the search; the other points are offered
    tested = {f["trial"]: f["test"] for f in summary["front"] if f["test"]}
    assert tested == {selection["trial"]: selection["test"]}
    estimate = summary["front_test_estimate"]
    assert len(estimate["missing"]) == len(summary["front"]) - 1
    if estimate["missing"]:
        assert estimate["seconds"] > 0 and estimate["windows"] > 0
        assert any("s1 --test-front` (about" in line for line in summary["findings"])

    # a fresh computation of the selection's keep set gives its stored test metrics exactly
    stored = dict(study.user_attrs[FRONT_TEST_ATTR])
    del stored[keep_key(selection["keep"])]
    study.set_user_attr(FRONT_TEST_ATTR, stored)
    messages = []
    computed = front_test(prepared_from_study("s1", None, "cpu"), messages.append)
    assert len(messages) == len(summary["front"])
    again = computed[keep_key(selection["keep"])]
    for m in METRICS:  # equal up to float summation order (the search ran on 1 thread)
        assert again[m] == pytest.approx(selection["test"][m], rel=1e-8), m
    assert front_test(prepared_from_study("s1", None, "cpu"), messages.append) == computed
    assert len(messages) == len(summary["front"])  # nothing re-trained the second time

    paths = write_report(load_study("s1"), tmp_path / "r")
    summary = json.loads(paths["summary.json"].read_text())
    assert all(set(f["test"]) >= set(METRICS) for f in summary["front"])
    assert summary["front_test_estimate"]["missing"] == []
    rows = list(csv.DictReader(paths["front.csv"].open()))
    assert [float(r["test_mase"]) for r in rows] == [f["test"]["mase"] for f in summary["front"]]
    markdown = paths["report.md"].read_text()
    assert "## Front" in markdown and "test_mase" in markdown


def _summary(selected: float, zero_shot: float) -> dict:
    test = {"mase": selected}
    return {
        "study": "s",
        "objectives": ["mase", "params", "latency_ms"],
        "trials": {"unscreened": 0},
        "selection": {"rule": "knee", "test": test, "latency_off_profile": False},
        "reference": {
            "zero_shot": {"test": {"mase": zero_shot}},
            "realigned": {"test": {"mase": 1.1}},
        },
        "front": [],
        "front_test_estimate": {"missing": [], "windows": None, "seconds": None},
    }


def test_the_compute_line_counts_one_trial_in_the_singular():
    steps = [
        {"step": "screen", "count": None, "seconds": 53.2},
        {"step": "trials trained to the full budget", "count": 30, "seconds": 121.0},
        {"step": "trials stopped at a rung", "count": 1, "seconds": 1.4},
        {"step": "trials that failed", "count": 1200, "seconds": 0.4},
    ]
    assert compute_line({"steps": steps, "total_s": 176.0}) == (
        "compute, all runs of this study: 176 s (screen 53 s; 30 trials trained to the full "
        "budget 121 s; 1 trial stopped at a rung 1 s; 1,200 trials that failed 0 s)"
    )
    assert counted(1, "keep set") == "1 keep set" and counted(1200, "trial") == "1,200 trials"


def test_a_within_rule_no_front_point_meets_is_said_plainly():
    summary = _summary(1.15, 1.19)
    summary["selection"].update(rule="within:mase<=5%", rule_met=False, values={"mase": 1.2})
    summary["reference"]["realigned"]["mase"] = 1.0
    said = [line for line in findings(summary) if line.startswith("No front point is within")]
    assert said == [
        "No front point is within the rule within:mase<=5%: the selection is the most accurate "
        "front point, validation mase 1.2 against 1 for the full model re-aligned (+20.0%); "
        "more trials may find one."
    ]


def test_a_selection_worse_on_test_than_the_full_model_zero_shot_is_said_plainly():
    worse = findings(_summary(1.226, 1.190))
    assert worse[0].startswith("WORSE THAN THE FULL MODEL")
    assert "1.226 against 1.19 for the full model zero-shot (+3.0%)" in worse[0]
    better = findings(_summary(1.15, 1.190))
    assert not any("WORSE" in line for line in better)
    assert better[0] == (
        "The selection (knee) is at least as good on test as the full model zero-shot: test mase "
        "1.15 against 1.19 for the full model zero-shot (-3.4%) and 1.1 re-aligned (+4.5%)."
    )


def test_the_search_and_the_report_end_with_the_verdict_on_test(
    tiny_model_dir, tiny_csv, tiny_space, studies, capsys
):
    argv = ["search", "--study", "c1", "--model", str(tiny_model_dir), "--dataset"]
    argv += [str(tiny_csv), "--space", str(tiny_space), "--trials", "3", "--device", "cpu"]
    assert main([*argv, "--threads", "1"]) == 0
    searched = capsys.readouterr().out
    summary = collect(load_study("c1"))
    verdict = summary["findings"][0]
    selected = summary["selection"]["test"]["mase"]
    zero_shot = summary["reference"]["zero_shot"]["test"]["mase"]
    assert verdict.startswith("WORSE" if selected > zero_shot else "The selection")
    assert verdict in searched
    assert "compute, all runs of this study:" in searched and "3 trials trained" in searched
    assert main(["report", "c1"]) == 0
    reported = capsys.readouterr().out
    assert verdict in reported and "report.md" in reported
    report = studies / "c1" / "report"
    assert verdict in (report / "report.md").read_text()
    assert "id='findings'" in (report / "report.html").read_text()


def test_report_test_front_computes_every_front_point(
    tiny_model_dir, tiny_csv, tiny_space, studies, capsys
):
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, threads=1, study="c2", trials=4), log=quiet
    )
    study = load_study("c2")
    searched = {r["step"]: r for r in collect(study)["compute"]["steps"]}
    study.set_user_attr(FRONT_TEST_ATTR, {})  # so --test-front re-trains at least one point
    assert main(["report", "c2", "--test-front", "--device", "cpu", "--threads", "1"]) == 0
    summary = collect(load_study("c2"))
    assert all(f["test"] for f in summary["front"])
    assert not any("--test-front" in line for line in summary["findings"])

    # where the compute went: every step of the search once, then the front's test metrics
    steps = {r["step"]: r for r in summary["compute"]["steps"]}
    before = ["latency profile", "full model (val)", "importance", "screen"]
    # the front is timed at the end, but for the selection, timed with its re-training: a step
    # of its own only where the front holds more than the selection
    timed = ["front latency"] if len(summary["front"]) > 1 else []
    after = ["full model (test)", "selection", *timed, "front test"]
    trained = "trials trained to the full budget"
    assert list(searched) == [*before, trained, *after[:-1]]
    assert list(steps) == [*before, trained, *after]
    assert all(steps[s]["seconds"] > 0 for s in steps)
    assert all(steps[s] == searched[s] for s in searched)  # the report re-ran none of them
    records = [TrialRecord.of(t) for t in trained_trials(load_study("c2"))]
    assert steps[trained]["count"] == len(records) == 4
    assert steps[trained]["seconds"] == pytest.approx(sum(r.wall_s for r in records))
    assert summary["compute"]["total_s"] == pytest.approx(sum(r["seconds"] for r in steps.values()))
    markdown = (studies / "c2" / "report" / "report.md").read_text()
    assert "## Compute" in markdown and "| screen |" in markdown
    # the hypervolume over compute: the steps before the trials, then each trial's seconds
    hv = summary["hypervolume"]
    before_s = sum(steps[s]["seconds"] for s in before)
    spent = np.array(hv["compute_s"])
    assert len(spent) == len(hv["curve"]) == 4
    assert spent == pytest.approx(before_s + np.cumsum([r.wall_s for r in records]), abs=0.01)
    assert "first held after" in markdown
    assert "Hypervolume over compute" in (studies / "c2" / "report" / "report.html").read_text()


def test_proposals_made_without_the_screen_once_the_front_stalled_are_said():
    from autoprune.multifidelity import SCREEN_BACK, STALL

    summary = _summary(1.15, 1.19)
    assert not any("stalled" in line for line in findings(summary))
    summary["trials"] = {"unscreened": 7}
    said = [line for line in findings(summary) if "stalled" in line]
    assert said == [
        f"7 proposals came after the front had stalled ({STALL} trained trials in a row added "
        "no hypervolume): the screened sampler then proposes without the screen until a trial "
        f"adds some, or {SCREEN_BACK} in a row have added none."
    ]


def test_a_growing_front_settles_once_its_gain_is_older_than_the_last_fifth():
    late = [0.2, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.94, 1.0]  # held 95% at the 10th
    assert settled_at(late) == 12  # the 10th trial is in the last fifth of 11, not of 12
    assert not still_growing(late + [1.0, 1.0]) and still_growing(late + [1.0])
    settled = [0.2, 0.5, 0.96, 0.97, 0.98, 0.99, 0.99, 1.0, 1.0, 1.0]
    assert settled_at(settled) == len(settled)
    assert settled_at([0.0] * 10) == 10 and settled_at([]) == 0


def test_a_front_still_growing_in_its_last_trials_is_said():
    settled = [0.2, 0.5, 0.96, 0.97, 0.98, 0.99, 0.99, 1.0, 1.0, 1.0]
    assert first_held(settled) == 2 and not still_growing(settled)
    late = [0.2, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.94, 1.0]
    assert first_held(late) == 9 and still_growing(late)
    assert not still_growing([0.0] * 10)  # no volume at all is not a front growing
    seconds = [10.0 * (i + 1) for i in range(10)]
    summary = _summary(1.15, 1.19)
    summary["hypervolume"] = {"curve": late, "compute_s": seconds}
    said = [line for line in findings(summary) if line.startswith("The front was still growing")]
    assert said == [
        "The front was still growing: it first held 95% of its hypervolume after 10 of its 10 "
        "trained trials (100 of 100 s of compute), so more trials may well move it: resume with "
        "`autoprune search --study s --trials N` (N trials in all)."
    ]
    summary["hypervolume"] = {"curve": settled, "compute_s": seconds}
    assert not any(line.startswith("The front was") for line in findings(summary))


def test_latency_off_the_profile_is_flagged_on_the_front_and_the_selection(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch, tmp_path
):
    assert not latency_off_profile(100.0, 140.0) and not latency_off_profile(100.0, 70.0)
    assert latency_off_profile(100.0, 160.0) and latency_off_profile(100.0, 60.0)
    assert latency_off_profile(100.0, None) is None
    # the profile is measured on an idle machine, then the machine gets 100x slower (not 10x: a
    # busy host can move the profile's own timings by ~3.5x, which left 10x at 2.9x once)
    real = objective_module.measure_latency
    slower = lambda c, m: 100 * real(c, m)  # noqa: E731
    monkeypatch.setattr(objective_module, "measure_latency", slower)
    monkeypatch.setattr(finalize_module, "measure_latency", slower)
    # 6 trials: a front of more than the selection
    search(options(tiny_model_dir, tiny_csv, tiny_space, threads=1, trials=6), log=quiet)
    study = load_study("s1")
    # the trials were not timed; the front was, once, at the end
    assert not any("latency_measured_ms" in t.user_attrs for t in study.trials)
    paths = write_report(study, tmp_path / "r")
    summary = json.loads(paths["summary.json"].read_text())
    assert summary["front"] and all(f["latency_off_profile"] for f in summary["front"])
    for f in summary["front"]:
        assert f["latency_measured_ms"] > 5 * f["latency_ms"]
    assert summary["selection"]["latency_off_profile"]
    assert any("latency" in line and "off the profile" in line for line in summary["findings"])
    front = list(csv.DictReader(paths["front.csv"].open()))
    assert {r["latency_off_profile"] for r in front} == {"True"}
    assert "Latency: profile prediction against measurement" in paths["report.html"].read_text()
    # each front keep set timed once: resumed with nothing left to train, it times none again
    stored = study.user_attrs["front_latency"]
    assert set(stored) == {keep_key(f["keep"]) for f in summary["front"]}
    # the selection, timed with its re-training, is not timed again: the same measurement; the
    # rest of the front is, as a compute step of its own
    selection = summary["selection"]
    assert stored[keep_key(selection["keep"])] == selection["latency_measured_ms"]
    assert len(summary["front"]) > 1
    assert "front latency" in {r["step"] for r in summary["compute"]["steps"]}
    search(options(tiny_model_dir, tiny_csv, tiny_space, threads=1, trials=6), log=quiet)
    assert load_study("s1").user_attrs["front_latency"] == stored


def test_every_report_says_the_scale_of_each_metric(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, threads=1, trials=2), log=quiet)
    paths = write_report(load_study("s1"), tmp_path / "r")
    summary = json.loads(paths["summary.json"].read_text())
    assert "standardised" in summary["metric_scales"]["mse"]
    assert "raw" in summary["metric_scales"]["crps"]
    for name in ("report.md", "report.html"):
        text = paths[name].read_text()
        assert "train-standardised" in text and "mean_wQuantileLoss" in text, name


def test_a_search_selects_by_the_within_rule_or_says_it_could_not(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    opts = options(tiny_model_dir, tiny_csv, tiny_space, threads=1, trials=3)
    opts.rule = "within:mase<=1000%"  # everything qualifies: the fewest parameters win
    selection = search(opts, log=quiet)["selection"]
    summary = collect(load_study("s1"))
    assert selection["rule_met"] and selection["rule"] == opts.rule
    assert selection["values"]["params"] == min(f["params"] for f in summary["front"])
    assert not any("No front point is within" in line for line in summary["findings"])

    # 0%: no worse than the full model; when no front point is, the most accurate is selected
    opts.rule = "within:mase<=0%"
    selection = search(opts, log=quiet)["selection"]
    summary = collect(load_study("s1"))
    full = summary["reference"]["realigned"]["mase"]
    most_accurate = min(f["mase"] for f in summary["front"])
    assert selection["values"]["mase"] == most_accurate
    assert selection["rule_met"] == (most_accurate <= full)
    said = [line for line in summary["findings"] if "No front point is within" in line]
    assert bool(said) == (most_accurate > full)
