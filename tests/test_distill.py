"""Distillation re-alignment (`[realign] mode = "distill"`) on the tiny Moirai and toy CSV: the
full model is the teacher and stays untouched, the batches are the plain mode's, weight 0 is the
plain mode exactly, and a study refuses to resume with another mode."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from autoprune.cli import main
from autoprune.data import load_series
from autoprune.errors import SpaceError, StudyError
from autoprune.evaluate import Setting
from autoprune.models import load_adapter
from autoprune.objective import TrialContext, realign, run_trial
from autoprune.search.run import search
from autoprune.space import Realign, load_space, parse_space
from tests.conftest import TINY_SPACE, options, quiet

KEEP = (0, 2)


def _distill_space(tmp_path, weight: float | None = 1.0):
    text = TINY_SPACE.replace("batch_size = 8", 'batch_size = 8\nmode = "distill"')
    if weight is not None:
        text = text.replace('mode = "distill"', f'mode = "distill"\ndistill_weight = {weight}')
    path = tmp_path / f"distill-{weight}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ctx(tiny_model_dir, tiny_csv, tmp_path_factory):
    space = load_space(_distill_space(tmp_path_factory.mktemp("space")))
    adapter = load_adapter(str(tiny_model_dir))
    series = load_series(str(tiny_csv))
    setting = Setting(space.context_length, space.horizon, space.patch_size)
    return TrialContext(adapter, series, setting, space, torch.device("cpu"), seed=0)


def _with(ctx, **realign_changes) -> TrialContext:
    space = replace(ctx.space, realign=replace(ctx.space.realign, **realign_changes))
    return replace(ctx, space=space)


def _train(ctx, keep=KEEP):
    model = ctx.adapter.prune(keep)
    losses = realign(ctx, model)
    return model, losses


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_space_file_reads_mode_and_weight(tmp_path):
    space = load_space(_distill_space(tmp_path, 0.25))
    assert space.realign == Realign(
        steps=2, lr=1e-3, batch_size=8, mode="distill", distill_weight=0.25
    )
    settings = space.realign.settings()
    assert settings["mode"] == "distill" and settings["distill_weight"] == 0.25
    # plain re-alignment stores what it stored before modes existed (old studies resume)
    plain = parse_space({"model": "m", "num_layers": 4}, "x").realign
    assert plain.mode == "data" and plain.settings() == {"steps": 30, "lr": 3e-4, "batch_size": 32}


@pytest.mark.parametrize(
    "realign_table,message",
    [
        ({"mode": "teacher"}, "x.toml: realign.mode = 'teacher' is not a re-alignment mode"),
        ({"mode": 1}, "realign.mode = 1 is not a re-alignment mode"),
        ({"mode": "distill", "distill_weight": 1.5}, "realign.distill_weight = 1.5 must be"),
        ({"mode": "distill", "distill_weight": -0.1}, "realign.distill_weight = -0.1 must be"),
        ({"mode": "distill", "distill_weight": "all"}, "realign.distill_weight = 'all' must be"),
        ({"mode": "distill", "distill_weight": True}, "realign.distill_weight = True must be"),
        ({"distill_weight": 0.5}, 'applies only with mode = "distill"'),
    ],
)
def test_a_bad_mode_or_weight_is_refused_naming_key_and_value(realign_table, message):
    with pytest.raises(SpaceError) as info:
        parse_space({"model": "m", "num_layers": 4, "realign": realign_table}, "x.toml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "line,message",
    [
        ('mode = "teach"', "realign.mode = 'teach' is not a re-alignment mode"),
        ('mode = "distill"\ndistill_weight = 2', "realign.distill_weight = 2 must be"),
    ],
)
def test_the_cli_refuses_a_bad_mode_in_one_line_and_creates_nothing(
    tiny_model_dir, tiny_csv, tmp_path, monkeypatch, capsys, line, message
):
    space = tmp_path / "bad.toml"
    space.write_text(TINY_SPACE.replace("batch_size = 8", f"batch_size = 8\n{line}"))
    studies = tmp_path / "studies"
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(studies))
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code = main(
        ["search", "--model", str(tiny_model_dir), "--dataset", str(tiny_csv), "--space"]
        + [str(space), "--study", "n", "--trials", "2", "--device", "cpu"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0], err
    assert sorted(tmp_path.rglob("*")) == before, "a refused search created files"


def test_distill_trains_on_the_same_batches_and_leaves_the_teacher_unchanged(ctx, monkeypatch):
    teacher = _weights(ctx.adapter.model)
    seen: dict[str, list[np.ndarray]] = {"data": [], "distill": []}
    draw = type(ctx.series).train_batch
    for mode in seen:

        def recording(series, *args, _into=seen[mode], **kw):
            windows = draw(series, *args, **kw)
            _into.append(windows.past.copy())
            return windows

        monkeypatch.setattr(type(ctx.series), "train_batch", recording)
        model, losses = _train(_with(ctx, mode=mode))
        assert len(losses) == ctx.space.realign.steps and all(np.isfinite(losses))
        if mode == "data":
            plain_losses, plain_weights = losses, _weights(model)
        else:
            distill_losses, distill_weights = losses, _weights(model)
    monkeypatch.undo()
    assert len(seen["data"]) == len(seen["distill"]) == ctx.space.realign.steps
    for a, b in zip(seen["data"], seen["distill"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert distill_losses != plain_losses
    assert not _same(plain_weights, distill_weights)
    assert _same(teacher, _weights(ctx.adapter.model)), "distillation changed the teacher"
    assert not ctx.adapter.model.training


def test_distill_is_reproducible_and_weight_zero_is_plain_exactly(ctx):
    once, again = _train(ctx), _train(ctx)
    assert once[1] == again[1] and _same(_weights(once[0]), _weights(again[0]))
    plain = _train(_with(ctx, mode="data"))
    zero = _train(_with(ctx, distill_weight=0.0))
    assert zero[1] == plain[1]
    assert _same(_weights(zero[0]), _weights(plain[0]))
    half = _train(_with(ctx, distill_weight=0.5))
    assert half[1] != plain[1] and half[1] != once[1]


def test_a_distill_trial_runs_end_to_end_and_differs_from_plain(ctx):
    teacher = _weights(ctx.adapter.model)
    _, distilled = run_trial(ctx, KEEP)
    _, plain = run_trial(_with(ctx, mode="data"), KEEP)
    assert distilled["realign_steps"] == plain["realign_steps"] == ctx.space.realign.steps
    assert np.isfinite(distilled["mase"]) and distilled["mase"] != plain["mase"]
    assert distilled["realign_loss_last"] != plain["realign_loss_last"]
    assert distilled["timing"]["realign_s"] > 0
    assert _same(teacher, _weights(ctx.adapter.model))


def test_a_study_stores_the_mode_and_refuses_to_resume_with_another(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path
):
    distill = _distill_space(tmp_path, 0.5)
    search(options(tiny_model_dir, tiny_csv, distill, trials=2), log=quiet)
    from autoprune.report import write_report
    from autoprune.study import load_study, settings_of, trained_trials

    study = load_study("s1")
    assert settings_of(study)["realign"]["mode"] == "distill"
    assert settings_of(study)["realign"]["distill_weight"] == 0.5
    assert {t.user_attrs["realign_mode"] for t in trained_trials(study)} == {"distill"}
    paths = write_report(study, tmp_path / "r")
    report = paths["report.md"].read_text() + paths["report.html"].read_text()
    assert "distilled from the full model (teacher weight 0.5)" in report
    with pytest.raises(StudyError, match="created with realign"):
        search(options(tiny_model_dir, tiny_csv, tiny_space, trials=3), log=quiet)
    with pytest.raises(StudyError, match="created with realign"):
        search(
            options(tiny_model_dir, tiny_csv, _distill_space(tmp_path, 1.0), trials=3), log=quiet
        )
