"""End-to-end studies on a tiny random Moirai and a toy CSV: every part is real (uni2ts, Optuna
with SQLite, the report writer), only small."""

import csv
import hashlib
import json
import math
import shutil
import threading
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import autoprune.search.run as run_module
import autoprune.study as study_module
from autoprune.errors import AutoPruneError, StudyError
from autoprune.pareto import non_dominated
from autoprune.record import TrialRecord
from autoprune.report import collect, still_growing
from autoprune.screen import PROGRESS_EVERY
from autoprune.search.cached import screen_progress
from autoprune.search.options import SearchOptions, prepare
from autoprune.search.run import search
from autoprune.study import (
    hypervolume_curve_of,
    load_study,
    search_seconds,
    settings_of,
    study_dir,
    trained_trials,
)
from tests.conftest import (
    GROWING_AT_FIFTH,
    TINY_SPACE,
    options,
    quiet,
    save_tiny_model,
    search_growing_at_fifth,
)


def test_search_resumes_to_the_total_and_never_retrains(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    result = search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    assert result["stopped"] == "reached"
    study = load_study("s1")
    first = {t.number: t.values for t in trained_trials(study)}
    assert len(first) == 3
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=6), log=quiet)
    study = load_study("s1")
    trained = trained_trials(study)
    assert len(trained) == 6
    for number, values in first.items():  # earlier trials untouched
        assert study.trials[number].values == values
    keeps = [tuple(t.user_attrs["keep"]) for t in trained]
    assert len(set(keeps)) == len(keeps)
    attrs = trained[0].user_attrs
    for key in (
        "keep",
        "mase",
        "params",
        "latency_ms",
        "device",
        "seed",
        "realign_steps",
        "realign_lr",
        "wall_s",
        "timing",
    ):
        assert key in attrs
    assert attrs["realign_steps"] == 2
    # the objective is the latency profile's prediction: a trial is not timed (its front is, at
    # the end of the search)
    assert "latency_measured_ms" not in attrs and "latency_s" not in attrs["timing"]
    reference = study.user_attrs["reference"]
    assert reference["zero_shot"]["realign_steps"] == 0
    assert reference["realigned"]["realign_steps"] == 2
    assert "test" in reference["realigned"]
    selection = study.user_attrs["selection"]
    assert selection["rule"] == "within:mase<=0%" and selection["test"]["mase"] > 0
    assert selection["val_reproduced"]  # re-training the selection reproduces its trial


def test_resume_with_defaults_uses_the_stored_settings(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=2), log=quiet)
    prep = prepare(SearchOptions(study="s1", trials=3, device="cpu"))
    assert prep.settings["model"] == str(tiny_model_dir)
    assert prep.settings["dataset"] == str(tiny_csv)


def test_without_trials_the_search_goes_on_while_its_front_is_still_growing(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch, steady_latency
):
    # the default's 30 and 45, scaled to the tiny space's 14 keep sets
    monkeypatch.setattr(run_module, "DEFAULT_TRIALS", 5)
    monkeypatch.setattr(run_module, "DEFAULT_TRIALS_MAX", 8)
    objectives = ["mase", "params", "latency_ms"]
    search_growing_at_fifth(options(tiny_model_dir, tiny_csv, tiny_space), log=quiet)
    study = load_study("s1")
    assert [tuple(t.user_attrs["keep"]) for t in trained_trials(study)] == GROWING_AT_FIFTH
    curve = hypervolume_curve_of(study, objectives)
    assert len(curve) == 5 and still_growing(curve)  # --trials given: no further
    said, totals = [], []
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=None),
        log=said.append,
        on_target=totals.append,
    )
    curve = hypervolume_curve_of(load_study("s1"), objectives)
    assert 5 < len(curve) <= 8 and (len(curve) == 8 or not still_growing(curve))
    assert totals[-1] == len(curve)
    growing = [m for m in said if m.startswith("the front is still growing")]
    assert growing and "after 5 of its 5 trained trials" in growing[0]
    went_on = f"The search went on from 5 to {len(curve)} trained trials"  # the report says why
    assert any(f.startswith(went_on) for f in collect(load_study("s1"))["findings"])
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=None), log=quiet)
    assert len(trained_trials(load_study("s1"))) == len(curve)  # settled: a resume adds none


def test_the_default_target_stops_growing_at_its_maximum(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch, steady_latency
):
    monkeypatch.setattr(run_module, "DEFAULT_TRIALS", 5)
    monkeypatch.setattr(run_module, "DEFAULT_TRIALS_MAX", 5)
    search_growing_at_fifth(options(tiny_model_dir, tiny_csv, tiny_space), log=quiet)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=None), log=quiet)
    curve = hypervolume_curve_of(load_study("s1"), ["mase", "params", "latency_ms"])
    assert len(curve) == 5 and still_growing(curve)


def test_resume_with_a_different_dataset_is_refused(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=1), log=quiet)
    other = tmp_path / "other.csv"
    other.write_text(tiny_csv.read_text())
    with pytest.raises(StudyError, match="created with dataset"):
        prepare(options(tiny_model_dir, other, tiny_space))
    assert len(trained_trials(load_study("s1"))) == 1


def test_a_study_knows_its_model_by_its_weights_not_by_where_they_lie(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path
):
    here = tmp_path / "here"
    shutil.copytree(tiny_model_dir, here)
    search(options(here, tiny_csv, tiny_space, trials=1), log=quiet)
    digest = hashlib.sha256((here / "model.safetensors").read_bytes()).hexdigest()
    assert settings_of(load_study("s1"))["weights_sha256"] == digest  # what sha256sum prints
    # the same weights under another name warm-start a study
    other_name = prepare(options(tiny_model_dir, tiny_csv, tiny_space, study="s2", warm_start="s1"))
    assert list(other_name.warm) == ["s1"]
    # the same name with other weights (a hub id whose weights were replaced) resumes nothing
    save_tiny_model(here, seed=1)
    with pytest.raises(StudyError, match=f"created with model '{here}' \\(weights sha256 "):
        prepare(options(here, tiny_csv, tiny_space))
    with pytest.raises(AutoPruneError, match="a warm start needs a study of the same model"):
        prepare(options(here, tiny_csv, tiny_space, study="s3", warm_start="s1"))
    # the checkpoint moved: the study resumes from where it lies now, and keeps that place
    prepare(options(tiny_model_dir, tiny_csv, tiny_space, trials=2))
    assert settings_of(load_study("s1"))["model"] == str(tiny_model_dir)
    assert len(trained_trials(load_study("s1"))) == 1


def test_a_repeated_keep_set_is_looked_up(tiny_model_dir, tiny_csv, tiny_space, studies):
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=2), log=quiet)
    study = load_study("s1")
    done = trained_trials(study)[0]
    study.enqueue_trial(done.params)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    study = load_study("s1")
    lookups = [t for t in study.trials if "lookup_of" in t.user_attrs]
    assert [t.user_attrs["lookup_of"] for t in lookups] == [done.number]
    assert lookups[0].values == done.values
    assert "wall_s" not in lookups[0].user_attrs  # nothing was trained


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    import autoprune.objective as objective

    real = objective.run_trial
    calls = {"n": 0}

    def flaky(ctx, keep, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise FloatingPointError("val mase is not finite")
        return real(ctx, keep, **kw)

    monkeypatch.setattr(objective, "run_trial", flaky)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    study = load_study("s1")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert failed[0].user_attrs["fail_reason"] == "FloatingPointError: val mase is not finite"
    assert len(trained_trials(study)) == 3
    # the time it ran before failing is compute the study spent, and its report says so
    assert failed[0].user_attrs["wall_s"] >= 0
    steps = {r["step"]: r for r in collect(study)["compute"]["steps"]}
    assert steps["trials that failed"]["count"] == 1


def test_a_nan_loss_fails_that_trial_only(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    """The second pruned model's re-alignment diverges (its loss turns NaN): that trial is
    failed with the reason, and the study still reaches its total."""
    import itertools

    from autoprune.models.moirai import MoiraiAdapter

    real = MoiraiAdapter.loss
    counter = itertools.count()

    def diverging(self, model, *args, **kwargs):
        loss = real(self, model, *args, **kwargs)
        if len(self.layers(model)) < 4:
            if not hasattr(model, "_nth_pruned"):
                model._nth_pruned = next(counter)
            if model._nth_pruned == 1:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(MoiraiAdapter, "loss", diverging)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    study = load_study("s1")
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert (
        failed[0]
        .user_attrs["fail_reason"]
        .startswith("NonFiniteLoss: re-alignment loss became nan")
    )
    assert len(trained_trials(study)) == 3
    assert all(math.isfinite(v) for t in trained_trials(study) for v in t.values)


def test_a_trial_left_running_by_a_crash_is_failed_and_requeued(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    monkeypatch.setattr(study_module, "HEARTBEAT_S", 1)
    monkeypatch.setattr(study_module, "GRACE_S", 1)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=1), log=quiet)
    study = load_study("s1")
    # what a kill -9 leaves behind: a RUNNING trial with a keep set and a last heartbeat
    flags = optuna.distributions.CategoricalDistribution((True, False))
    crashed = study.ask({f"layer_{i:02d}": flags for i in range(4)})
    keep = [i for i in range(4) if crashed.params[f"layer_{i:02d}"]] or [0]
    crashed.set_user_attr("keep", keep)
    study._storage.record_heartbeat(crashed._trial_id)
    time.sleep(2.5)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    study = load_study("s1")
    assert study.trials[crashed.number].state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == crashed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == study.trials[crashed.number].params


def test_report_front_matches_trials_csv(tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path):
    from autoprune.report import write_report

    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=5), log=quiet)
    paths = write_report(load_study("s1"), tmp_path / "r")
    summary = json.loads(paths["summary.json"].read_text())
    rows = [
        r
        for r in csv.DictReader(paths["trials.csv"].open())
        if r["state"] == "COMPLETE" and not r["lookup_of"]
    ]
    values = np.array([[float(r[o]) for o in summary["objectives"]] for r in rows])
    expected = sorted(
        int(r["trial"]) for r, m in zip(rows, non_dominated(values), strict=True) if m
    )
    assert sorted(f["trial"] for f in summary["front"]) == expected
    assert summary["trials"]["trained"] == 5
    assert summary["selection"]["trial"] in expected
    html = paths["report.html"].read_text()
    assert "plotly" in html and "Selected configuration" in html and "Kept layers" in html
    # every search scores its layers once (one calibration pass), so the chart is always there
    assert set(summary["priors"]) == {"bi", "angular", "cka", "few-layer"}
    assert all(len(v) == 4 for v in summary["priors"].values())  # the tiny model's 4 layers
    assert "Layer importance by method" in html
    assert paths["pareto.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budget_rule_selects_within_budget(tiny_model_dir, tiny_csv, tiny_space, studies):
    result = search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=4, rule="budget:params<=90%"),
        log=quiet,
    )
    selection = result["selection"]
    study = load_study("s1")
    full = study.user_attrs["reference"]["realigned"]["params"]
    assert selection["values"]["params"] <= 0.9 * full
    assert selection["rule"] == "budget:params<=90%"


def test_screened_sampler_caches_its_screen(tiny_model_dir, tiny_csv, tiny_space, studies):
    messages = []
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=4, sampler="screened"),
        log=messages.append,
    )
    assert any("screening 14 keep sets" in m for m in messages)
    assert (studies / "s1" / "screen.json").is_file()
    messages.clear()
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=6, sampler="screened"),
        log=messages.append,
    )
    assert not any("screening" in m for m in messages)
    trained = trained_trials(load_study("s1"))
    keeps = [tuple(t.user_attrs["keep"]) for t in trained]
    assert len(trained) == 6 and len(set(keeps)) == 6


def test_a_screen_projected_past_its_share_of_the_search_is_skipped_until_asked_for(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    """auto: the screen stops at its first progress report once it projects past its share of
    the search's expected compute; the sampler goes on without it, the study says why and
    counts the seconds it ran; a resume does not start it again; `--screen on` screens."""
    import autoprune.screen as screen_module
    import autoprune.search.run as run_module

    monkeypatch.setattr(screen_module, "PROGRESS_EVERY", 2)  # a report after 2 of 15 keep sets
    monkeypatch.setattr(run_module, "SCREEN_SHARE", 1e-9)  # no screen is worth that little
    messages = []
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=messages.append)
    assert any("screening 14 keep sets" in m for m in messages)
    assert any(m.startswith("Zero-shot screen skipped: it would take about") for m in messages)
    assert not (studies / "s1" / "screen.json").exists()
    study = load_study("s1")
    skipped = study.user_attrs["screen_skipped"]
    assert skipped["reason"] == "budget" and skipped["projected_s"] > skipped["allowed_s"]
    assert skipped["share"] == 1e-9  # the share that decided it, for the report to say
    assert study.user_attrs["compute"]["screen"] > 0  # the stretch it ran is counted
    assert any(f.startswith("Zero-shot screen skipped") for f in collect(study)["findings"])
    assert len({tuple(t.user_attrs["keep"]) for t in trained_trials(study)}) == 3
    messages.clear()
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=4), log=messages.append)
    assert not any("screening" in m for m in messages)  # known to be too dear: not started
    assert any(m.startswith("Zero-shot screen skipped") for m in messages)
    messages.clear()
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=5, screen="on"), log=messages.append
    )
    assert any("screening 14 keep sets" in m for m in messages)
    assert (studies / "s1" / "screen.json").is_file()
    study = load_study("s1")
    assert study.user_attrs["screen_skipped"] is None
    assert study.user_attrs["autoprune"]["screen"] == "on"
    assert len({tuple(t.user_attrs["keep"]) for t in trained_trials(study)}) == 5


def test_a_skipped_screen_is_said_with_the_share_that_skipped_it():
    from autoprune.screen import skipped_sentence

    said = skipped_sentence(38.2, 10.4, 0.05)
    assert "about 38 s, more than 5% of this search's expected compute (10 s allowed)" in said
    assert "more than 10% of" in skipped_sentence(38.2, 10.4, 0.1)
    # a study that skipped its screen before the share was stored
    assert "more than its share of the search (10 s allowed)" in skipped_sentence(38.2, 10.4, None)


def test_screen_off_never_screens(tiny_model_dir, tiny_csv, tiny_space, studies):
    messages = []
    search(options(tiny_model_dir, tiny_csv, tiny_space, screen="off"), log=messages.append)
    assert not any("screening" in m for m in messages)
    assert "the screened sampler starts without the zero-shot screen (--screen off)" in messages
    study = load_study("s1")
    assert study.user_attrs["screen_skipped"]["reason"] == "--screen off"
    assert "screen" not in study.user_attrs["compute"]
    assert len(trained_trials(study)) == 3


def test_a_long_screen_reports_its_progress_each_quarter():
    """`screen` calls its hook every PROGRESS_EVERY keep sets; the user sees a line per quarter
    crossed, with the time left."""
    lines = []
    hook = screen_progress(4095, lines.append)
    for done in range(PROGRESS_EVERY, 4095, PROGRESS_EVERY):
        hook(done)
    assert [line.split(":")[0].strip() for line in lines] == [
        f"screened {n:,} of 4,095 keep sets" for n in (1024, 2048, 3072)
    ]
    assert all("s left" in line for line in lines)
    lines.clear()
    hook = screen_progress(300, lines.append)  # a quarter a call: one line each, none at 64
    for done in range(PROGRESS_EVERY, 300, PROGRESS_EVERY):
        hook(done)
    assert [line.split(":")[0].strip() for line in lines] == [
        f"screened {n} of 300 keep sets" for n in (128, 192, 256)
    ]


def test_enqueued_seeds_come_first(tiny_model_dir, tiny_csv, tiny_space, studies):
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=4, enqueue="drop-last"), log=quiet)
    first = sorted(trained_trials(load_study("s1")), key=lambda t: t.number)[:3]
    assert [t.user_attrs.get("baseline") for t in first] == ["drop-last"] * 3
    assert [t.user_attrs["keep"] for t in first] == [[0], [0, 1], [0, 1, 2]]


def test_baselines_are_trained_tagged_and_reported(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path, monkeypatch
):
    import autoprune.multifidelity as mf
    from autoprune import baselines
    from autoprune.report import write_report
    from autoprune.search.cached import ensure_reference
    from autoprune.search.options import prepared_from_study

    # a multi-fidelity study calibrated to stop every new keep set: baselines still go the
    # whole budget (their numbers are what was asked for)
    monkeypatch.setattr(mf, "OPTIMISM", -1e3)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=mf.MIN_PAIRS), log=quiet)
    prep = prepared_from_study("s1", None, "cpu")
    assert prep.ctx.stop_early
    ensure_reference(prep, quiet)
    table = baselines.run(prep, ["drop-last", "random", "bi"], [1, 2], quiet)
    assert [(r["baseline"], r["kept"]) for r in table] == [
        ("drop-last", 1),
        ("drop-last", 2),
        ("random", 1),
        ("random", 2),
        ("bi", 1),
        ("bi", 2),
    ]
    assert all(r["trial"] is not None for r in table)
    pruned = [t for t in load_study("s1").trials if t.state == TrialState.PRUNED]
    assert not [t for t in pruned if "baseline" in t.user_attrs]
    summary = json.loads(write_report(load_study("s1"), tmp_path / "r")["summary.json"].read_text())
    assert len(summary["baselines"]) == 6 and "bi" in summary["priors"]
    with pytest.raises(Exception, match="outside the space"):
        baselines.run(prep, ["drop-last"], [4], quiet)


def test_the_study_total_counts_only_trials_that_claimed_their_keep_set():
    """A running trial that has not claimed a keep set yet (or never will: a killed process's,
    before its heartbeat is stale) does not count against `--trials`."""
    from autoprune.objective import within_total
    from autoprune.record import mark

    study = optuna.create_study(directions=["minimize"])
    unclaimed, claimed = study.ask(), study.ask()
    mark(claimed, keep=[0, 1], claimed=True)
    assert within_total(study, claimed.number, target=1)
    study.tell(study.ask(), 1.0)  # one trained keep set: the total of 1 is reached
    assert not within_total(study, claimed.number, target=1)
    assert unclaimed.number < claimed.number


def test_a_trial_failed_as_stale_elsewhere_while_it_waits_says_so():
    """Another process failed this one's trial as stale (this process was paused past the
    heartbeat's grace period) while it waited for the total: a clear error, not a KeyError."""
    from autoprune.objective import FailedElsewhere, within_total
    from autoprune.record import mark

    study = optuna.create_study(directions=["minimize"])
    trial = study.ask()
    mark(trial, keep=[0], claimed=True)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with pytest.raises(FailedElsewhere, match=f"trial {trial.number} was failed as stale"):
        within_total(study, trial.number, target=2)


def test_a_trial_failed_as_stale_elsewhere_while_it_trains_costs_one_failure(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    """A process paused mid-trial (a sleeping laptop) finds on waking that another process
    failed its trial as stale and re-queued the keep set: Optuna cannot tell that trial, which
    used to end the search; now it counts as one failure and the search goes on to its total,
    the re-queued keep set trained once."""
    import autoprune.objective as objective_module

    real, paused = objective_module.run_trial, []

    def paused_once(ctx, keep, go_on=None):
        study = load_study("s1")
        if not paused:  # what another process's fail_stale_trials does to a stale trial
            (mine,) = study.get_trials(states=(TrialState.RUNNING,))
            study._storage.set_trial_state_values(mine._trial_id, TrialState.FAIL)
            retry = study._storage.get_heartbeat_stale_trial_callback()
            retry(study, study._storage.get_trial(mine._trial_id))
            paused.append(mine.number)
        return real(ctx, keep, go_on)

    monkeypatch.setattr(objective_module, "run_trial", paused_once)
    search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    study = load_study("s1")
    assert len(trained_trials(study)) == 3
    failed = study.trials[paused[0]]
    assert failed.state == TrialState.FAIL
    (retried,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed.number]
    assert retried.state == TrialState.COMPLETE and retried.params == failed.params


def _checking_total(study, trial, target: int, answers: dict, name: str) -> threading.Thread:
    """`within_total` for `trial` in a thread of its own, started; it answers in
    `answers[name]`."""
    from autoprune.objective import within_total

    def check():
        answers[name] = within_total(study, trial.number, target)

    thread = threading.Thread(target=check)
    thread.start()
    return thread


def test_a_trial_that_claims_late_waits_for_a_later_one_already_training(monkeypatch):
    """Two processes near the total: the later-numbered trial was proposed faster, claimed its
    keep set and passed the total's check before the earlier one claimed (CI saw 11 of 10
    trained); the earlier one counts it and waits, then finds the total reached."""
    import autoprune.objective as objective_module
    from autoprune.record import mark

    monkeypatch.setattr(objective_module, "TOTAL_POLL_S", 0.01)
    study = optuna.create_study(directions=["minimize"])
    slow, fast = study.ask(), study.ask()
    mark(fast, keep=[1], claimed=True, counted=True)  # passed the check: training
    mark(slow, keep=[0], claimed=True)
    answers: dict[str, bool] = {}
    waiting = _checking_total(study, slow, 1, answers, "slow")
    waiting.join(timeout=0.3)
    assert waiting.is_alive() and not answers  # the total could be made: it waits
    study.tell(fast, 1.0)
    waiting.join(timeout=5)
    assert answers == {"slow": False}  # the study holds its one trained keep set


def test_of_two_trials_passing_the_total_together_the_later_yields(monkeypatch):
    """Two processes passed the total's first step together and both marked themselves
    `counted` (each read the study before the other wrote): the later-numbered one, reading
    again, sees the earlier one's mark, unmarks itself and waits; the earlier one waits while the
    later is still marked and passes once it has yielded. Before, both trained."""
    import autoprune.objective as objective_module
    from autoprune.record import mark

    monkeypatch.setattr(objective_module, "TOTAL_POLL_S", 0.01)
    study = optuna.create_study(directions=["minimize"])
    early, late = study.ask(), study.ask()
    mark(early, keep=[0], claimed=True, counted=True)
    mark(late, keep=[1], claimed=True, counted=True)
    answers: dict[str, bool] = {}
    waiting_early = _checking_total(study, early, 1, answers, "early")
    waiting_early.join(timeout=0.2)
    assert waiting_early.is_alive()  # the later one is still marked: the early one waits
    waiting_late = _checking_total(study, late, 1, answers, "late")
    waiting_early.join(timeout=5)
    assert answers == {"early": True}  # the later one yielded; the earlier one trains
    assert not TrialRecord.of(study.trials[late.number]).counted
    assert waiting_late.is_alive()  # and waits for it
    study.tell(early, 1.0)
    waiting_late.join(timeout=5)
    assert answers == {"early": True, "late": False}


def test_a_marked_trial_yields_only_to_earlier_ones_that_fill_the_room(monkeypatch):
    """Room for two more, one trial already training and two more marked together: the
    earlier of the two keeps its mark while the later is marked too (yielding to the training
    one would leave both waiting for each other), and passes once the later yields."""
    import autoprune.objective as objective_module
    from autoprune.record import mark

    monkeypatch.setattr(objective_module, "TOTAL_POLL_S", 0.01)
    study = optuna.create_study(directions=["minimize"])
    training, early, late = study.ask(), study.ask(), study.ask()
    for i, trial in enumerate((training, early, late)):
        mark(trial, keep=[i], claimed=True, counted=True)
    answers: dict[str, bool] = {}
    waiting_early = _checking_total(study, early, 2, answers, "early")
    waiting_early.join(timeout=0.2)
    assert waiting_early.is_alive()
    assert TrialRecord.of(study.trials[early.number]).counted  # it kept its mark
    waiting_late = _checking_total(study, late, 2, answers, "late")
    waiting_early.join(timeout=5)
    assert answers == {"early": True}
    assert not TrialRecord.of(study.trials[late.number]).counted and waiting_late.is_alive()
    study.tell(training, 1.0)
    study.tell(early, 1.0)
    waiting_late.join(timeout=5)
    assert answers == {"early": True, "late": False}


@pytest.mark.parametrize("processes,total", [(2, 1), (3, 2)])
def test_trials_checking_the_total_at_once_never_pass_on_the_same_room(
    monkeypatch, processes, total
):
    """Rounds of threads that claim their keep sets and check the total at about the same
    moment (the objective's steps; each pauses after every read of the study, as a process
    does while another writes, and starts after a random delay): in each round exactly `total`
    train, the others find the total reached once they have (the check before 2026-12-06 passed
    two of two in some rounds: the later-numbered trial passed before the earlier one
    claimed)."""
    import random

    import autoprune.objective as objective_module
    from autoprune.objective import within_total
    from autoprune.record import mark

    monkeypatch.setattr(objective_module, "TOTAL_POLL_S", 0.001)

    def check(study, trial, keep, delay, start, passed):
        start.wait()
        time.sleep(delay)
        mark(trial, keep=keep, claimed=True)
        if within_total(study, trial.number, total):
            passed.append(trial.number)
            study.tell(trial, 1.0)

    jitter = random.Random(0)
    for _ in range(30):
        study = optuna.create_study(directions=["minimize"])
        read = study.get_trials  # a snapshot, as a database's (in memory, not copied, it
        # would show writes made during the pause)
        study.get_trials = lambda *a, read=read, **k: (
            read(*a, **{**k, "deepcopy": True}),
            time.sleep(0.005),
        )[0]
        trials = [study.ask() for _ in range(processes)]
        passed, start = [], threading.Barrier(processes)
        threads = [
            threading.Thread(
                target=check, args=(study, t, [i], jitter.uniform(0, 0.008), start, passed)
            )
            for i, t in enumerate(trials)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len(passed) == total


def test_a_retried_trial_starts_from_what_it_was_enqueued_with(tmp_path):
    """A stale trial is re-queued with its enqueue-time fields only. A copied claim once hung a
    resumed study for good: the retry was popped (RUNNING, with the old claim) and the process
    killed before its first heartbeat, so it was never found stale and the study total waited
    for it (the kill -9 fault test, in CI)."""
    from autoprune.objective import within_total
    from autoprune.record import mark
    from autoprune.study import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, directions=["minimize"])
    flags = optuna.distributions.CategoricalDistribution((True, False))
    study.enqueue_trial({"layer_00": True}, user_attrs={"baseline": "bi"})
    crashed = study.ask({"layer_00": flags})
    mark(crashed, keep=[0], claimed=True, rungs={"3": {"mase": 1.0}})
    storage.set_trial_state_values(crashed._trial_id, TrialState.FAIL)
    storage.get_heartbeat_stale_trial_callback()(study, study.trials[crashed.number])
    retry = study.ask({"layer_00": flags})  # popped, then (say) killed before any heartbeat
    assert retry.user_attrs == {"baseline": "bi"} and retry.params == {"layer_00": True}
    assert study.trials[retry.number].system_attrs["failed_trial"] == crashed.number
    later = study.ask({"layer_00": flags})
    mark(later, keep=[0], claimed=True)
    assert within_total(study, later.number, target=1)  # returns at once: nothing to wait for


def test_a_trial_killed_inside_optunas_ask_is_found_stale_and_retried(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    """Optuna's heartbeat thread starts only after `ask`, whose sampler work can take seconds;
    the study's sampler beats as soon as `ask` makes a trial RUNNING, so a process killed
    there leaves a trial that goes stale and is re-queued (before, it stayed RUNNING for good
    and an enqueued keep set was lost)."""
    from autoprune.search.options import prepare
    from autoprune.search.run import study_sampler

    monkeypatch.setattr(study_module, "HEARTBEAT_S", 1)
    monkeypatch.setattr(study_module, "GRACE_S", 1)
    prep = prepare(options(tiny_model_dir, tiny_csv, tiny_space, trials=1, sampler="random"))
    prep.study.sampler = study_sampler(prep, quiet)
    prep.study.enqueue_trial(prep.ctx.space.params_of((0, 2)), {"baseline": "bi"})
    killed = prep.study.ask()  # the process dies here, before its objective runs
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(prep.study)
    trials = prep.study.get_trials(deepcopy=False)
    assert trials[killed.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert retry[0].user_attrs == {"baseline": "bi"} and retry[0].params == killed.params


def test_trials_that_pick_one_keep_set_at_once_never_both_train():
    """Two processes on one storage: trial x (lower number) and y of the same keep set, in the
    interleavings that a single check-after-write lost (y checked before x wrote its keep set)."""
    from autoprune.objective import same_keep
    from autoprune.record import mark

    keep = (0, 2)

    def trials():
        study = optuna.create_study(directions=["minimize"])
        return study, study.ask(), study.ask()

    def check(study, trial, claimed):
        other = same_keep(study, keep, trial.number, claimed)
        return other and other.number

    # y checks and claims before x writes its keep set: x yields to the claimed y
    study, x, y = trials()
    mark(y, keep=list(keep))
    assert check(study, y, claimed=False) is None
    mark(y, claimed=True)
    assert check(study, y, claimed=True) is None  # y trains
    mark(x, keep=list(keep))
    assert check(study, x, claimed=False) == y.number
    # y's first check before x writes, x's before y claims: y yields to the lower number
    study, x, y = trials()
    mark(y, keep=list(keep))
    assert check(study, y, claimed=False) is None
    mark(x, keep=list(keep))
    assert check(study, x, claimed=False) is None
    mark(y, claimed=True)
    mark(x, claimed=True)
    assert check(study, y, claimed=True) == x.number
    assert check(study, x, claimed=True) is None  # x trains
    # a completed trial of the keep set is looked up, at either check
    study, x, y = trials()
    mark(x, keep=list(keep))
    study.tell(x, [1.0])
    mark(y, keep=list(keep))
    assert check(study, y, claimed=False) == check(study, y, claimed=True) == x.number


def test_a_trial_records_the_rungs_something_reads_and_a_rung_is_the_prefix_of_the_full_budget(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    from autoprune.bench.truth import table_study
    from autoprune.objective import realign, run_trial, rung_steps

    tiny_space.write_text(TINY_SPACE.replace("steps = 2", "steps = 10"))  # rungs after 1 and 3
    assert rung_steps(30) == (3, 10) and rung_steps(10) == (1, 3)
    # a multi-fidelity study: the rung its stop rule reads; a single-fidelity one: none
    prep = prepare(options(tiny_model_dir, tiny_csv, tiny_space, fidelity="multi"))
    _, record = run_trial(prep.ctx, (0, 2))
    assert list(record["rungs"]) == ["3"] and record["rungs"]["3"]["mase"] > 0
    assert record["timing"]["rungs_s"] == pytest.approx(record["rungs"]["3"]["eval_s"], abs=1e-3)
    single = prepare(options(tiny_model_dir, tiny_csv, tiny_space, study="s2", fidelity="single"))
    _, alone = run_trial(single.ctx, (0, 2))
    assert alone["rungs"] == {} and alone["timing"]["rungs_s"] == 0
    assert alone["mase"] == record["mase"]  # the same model, whatever it recorded on the way
    # a ground-truth table's trials: every rung, each the prefix of the full budget
    table, _ = table_study(str(tiny_model_dir), str(tiny_csv), 2, str(tiny_space), quiet)
    _, full = run_trial(table.ctx, (0, 2))
    assert list(full["rungs"]) == ["1", "3"]
    assert full["rungs"]["3"]["mase"] == record["rungs"]["3"]["mase"]
    # evaluating a rung does not change the training: same losses with and without rungs
    with_rungs = realign(prep.ctx, prep.ctx.adapter.prune((0, 2)), {})
    without = realign(prep.ctx, prep.ctx.adapter.prune((0, 2)))
    assert with_rungs == without


def test_the_rung_fidelity_reads_the_screen_windows_unless_given_others(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    from autoprune.objective import rung_fidelity

    ctx = prepare(options(tiny_model_dir, tiny_csv, tiny_space)).ctx
    model = ctx.adapter.prune((0, 2))
    default = rung_fidelity(ctx, model)
    assert rung_fidelity(ctx, model, ctx._rung_windows) == default
    setting = ctx.setting
    few = [s.eval_windows("val", setting.context_length, setting.horizon, 2) for s in ctx.datasets]
    assert len(few[0].past) == 2 < len(ctx._rung_windows[0].past)
    elsewhere = rung_fidelity(ctx, model, few)
    assert np.isfinite(elsewhere) and elsewhere != default
    with pytest.raises(ValueError):  # one set of windows per dataset
        rung_fidelity(ctx, model, few * 2)


def test_a_multi_fidelity_study_stops_hopeless_keep_sets_and_can_continue_them(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    import autoprune.multifidelity as mf

    # pessimistic: once calibrated, every new keep set is predicted off the front and stopped
    monkeypatch.setattr(mf, "OPTIMISM", -1e3)
    opts = options(tiny_model_dir, tiny_csv, tiny_space, trials=mf.MIN_PAIRS + 1, fidelity="multi")
    search(opts, log=quiet)
    study = load_study("s1")
    trained = trained_trials(study)
    stopped = [
        t for t in study.trials if t.state == TrialState.PRUNED and "stopped_at" in t.user_attrs
    ]
    assert len(trained) == mf.MIN_PAIRS + 1 and stopped
    trained_keeps = {tuple(t.user_attrs["keep"]) for t in trained}
    for t in stopped:
        assert t.user_attrs["stopped_at"] == 1 and t.values is None
        assert set(t.user_attrs["rungs"]) == {"1"} and t.user_attrs["timing"]["realign_s"] > 0
    # the one trained after calibration is a keep set stopped before (each stops at most once)
    stopped_keeps = {tuple(t.user_attrs["keep"]) for t in stopped}
    assert len(trained_keeps & stopped_keeps) == 1
    selection = study.user_attrs["selection"]
    assert tuple(selection["keep"]) in trained_keeps  # never a stopped keep set
    # continued later: every stopped keep set trained to the full budget, nothing stopped again
    waiting = stopped_keeps - trained_keeps
    search(options(tiny_model_dir, tiny_csv, tiny_space, continue_stopped=True), log=quiet)
    study = load_study("s1")
    after = {tuple(t.user_attrs["keep"]) for t in trained_trials(study)}
    assert after == trained_keeps | waiting
    assert sum(t.state == TrialState.PRUNED for t in study.trials) == len(stopped)


def test_the_reference_test_metrics_wait_for_the_end(
    tiny_model_dir, tiny_csv, tiny_space, studies, monkeypatch
):
    from autoprune.search.cached import REALIGNED_FULL, ensure_reference

    prep = prepare(options(tiny_model_dir, tiny_csv, tiny_space))
    reference = ensure_reference(prep, quiet)
    assert "test" not in reference["zero_shot"] and "test" not in reference["realigned"]
    kept = study_dir("s1") / REALIGNED_FULL  # the re-aligned full model waits for its test
    assert kept.is_file()

    def realign_again(*args, **kwargs):
        raise AssertionError("the kept re-aligned full model should have been used")

    monkeypatch.setattr("autoprune.search.cached.realign", realign_again)
    first = search(options(tiny_model_dir, tiny_csv, tiny_space, trials=2), log=quiet)
    assert not kept.exists()  # used, then removed
    reference = load_study("s1").user_attrs["reference"]
    assert reference["realigned"]["test"]["mase"] > 0 and reference["zero_shot"]["test"]["mase"] > 0
    assert first["selection"]["test"]["mase"] > 0
    # the same numbers as evaluating the re-aligned full model at once (same seed, same budget)
    from autoprune.objective import run_trial

    _, record = run_trial(prep.ctx, tuple(range(prep.ctx.adapter.num_layers)), test=True)
    assert record["test"]["mase"] == reference["realigned"]["test"]["mase"]


def test_a_kept_model_is_restored_only_when_it_fits(tiny_model_dir, tmp_path):
    import torch

    from autoprune.models import load_adapter
    from autoprune.search.cached import restored, save_weights

    adapter = load_adapter(str(tiny_model_dir))
    full, short = adapter.prune((0, 1, 2, 3)), adapter.prune((0, 1))
    with torch.no_grad():
        next(full.parameters()).add_(1.0)
    path = tmp_path / "kept.safetensors"
    assert not restored(adapter.prune((0, 1, 2, 3)), path)  # not there: re-align
    save_weights(full, path)
    before = [p.clone() for p in short.parameters()]
    assert not restored(short, path)  # another model's weights: left untouched
    assert all(torch.equal(a, b) for a, b in zip(before, short.parameters(), strict=True))
    again = adapter.prune((0, 1, 2, 3))
    assert restored(again, path)
    pairs = zip(full.parameters(), again.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    assert not restored(adapter.prune((0, 1, 2, 3)), path)


def test_a_warm_start_reads_finished_studies_of_the_same_model(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, study="first", trials=3), log=quiet)
    prep = prepare(
        options(tiny_model_dir, tiny_csv, tiny_space, study="second", warm_start="first")
    )
    first = load_study("first")
    full = first.user_attrs["reference"]["realigned"]["mase"]
    assert prep.warm == {
        "first": {
            tuple(t.user_attrs["keep"]): pytest.approx(t.values[0] / full)
            for t in trained_trials(first)
        },
    }
    assert prep.settings["warm_start"] == "first"
    # several studies: one prior each, in the order named
    search(options(tiny_model_dir, tiny_csv, tiny_space, study="other", trials=2), log=quiet)
    both = prepare(
        options(tiny_model_dir, tiny_csv, tiny_space, study="third", warm_start="other,first")
    )
    assert list(both.warm) == ["other", "first"] and both.warm["first"] == prep.warm["first"]
    assert len(both.warm["other"]) == len(trained_trials(load_study("other")))
    assert both.settings["warm_start"] == "other,first"
    # the report says what the warm start was, and whose prior the sampler followed
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, study="third", warm_start="other,first"),
        log=quiet,
    )
    third = collect(load_study("third"))
    assert third["warm_start"]["studies"] == ["other", "first"]
    # each proposal after the first trained trial records the prior it followed
    followed = [t.user_attrs["warm_prior"] for t in load_study("third").get_trials()[1:]]
    assert set(followed) <= {"other", "first"}
    assert sum(third["warm_start"]["followed"].values()) == len(followed) >= 1
    finding = next(f for f in third["findings"] if f.startswith("Warm-started"))
    assert (
        finding.startswith("Warm-started from other, first:")
        and f"{len(followed)} proposals since the first trained trial" in finding
    )
    # resumed with another list, the earlier proposals still count for the study they followed
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, study="third", warm_start="first", trials=4),
        log=quiet,
    )
    resumed = collect(load_study("third"))["warm_start"]
    assert resumed["studies"] == ["first"]
    assert resumed["followed"] == {
        "first": followed.count("first"),
        "other": followed.count("other"),
    }
    again = prepare(options(tiny_model_dir, tiny_csv, tiny_space, study="third"))
    assert list(again.warm) == ["first"]  # resumed without the flag: the latest list goes on
    assert collect(load_study("first"))["warm_start"] is None
    with pytest.raises(StudyError, match="does not exist"):
        prepare(options(tiny_model_dir, tiny_csv, tiny_space, study="third", warm_start="nope"))


def test_a_compute_budget_stops_the_search_at_the_first_trial_that_spends_it(
    tiny_model_dir, tiny_csv, tiny_space, studies
):
    # a budget the steps before the trials already spend: one trial, so the study has a front;
    # no screen (`--screen auto` skips it under a spent budget, and a resume with room would
    # start it again: a 14-keep-set screen is done before its cost can be projected)
    first = search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=None, compute=0.001, screen="off"),
        log=quiet,
    )
    assert first["stopped"] == "budget" and first["selection"] is not None
    study = load_study("s1")
    assert len(trained_trials(study)) == 1
    # resumed with room for about one more trial: it runs trials until one crosses the budget
    seconds = TrialRecord.of(trained_trials(study)[0]).wall_s
    budget = search_seconds(study) + 0.5 * seconds
    again = search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=None, compute=budget), log=quiet
    )
    assert again["stopped"] == "budget"
    study = load_study("s1")
    spent = [TrialRecord.of(t).wall_s for t in study.get_trials() if TrialRecord.of(t).wall_s]
    assert search_seconds(study) >= budget > search_seconds(study) - spent[-1]
    assert len(trained_trials(study)) >= 2
    # --trials still caps: the study already holds that many, so nothing more runs
    held = len(trained_trials(study))
    capped = search(
        options(tiny_model_dir, tiny_csv, tiny_space, trials=held, compute=1e6), log=quiet
    )
    assert capped["stopped"] == "reached" and len(trained_trials(load_study("s1"))) == held
