"""Shared fixtures: a tiny random Moirai (the real uni2ts code, d_model 64, 4 layers), a small
synthetic CSV, and a search space that makes a whole study run in seconds."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autoprune.models.moirai import MoiraiAdapter
from autoprune.objective import LATENCY_BATCH

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_tiny_module(num_layers: int = 4, seed: int = 0):
    from uni2ts.distribution import MixtureOutput, NormalFixedScaleOutput, StudentTOutput

    from autoprune.models.moirai import _uni2ts

    torch.manual_seed(seed)
    head = MixtureOutput(components=[StudentTOutput(), NormalFixedScaleOutput()])
    return _uni2ts()[0](
        distr_output=head,
        d_model=64,
        num_layers=num_layers,
        patch_sizes=(8, 16),
        max_seq_len=128,
        attn_dropout_p=0.0,
        dropout_p=0.0,
    )


def save_tiny_model(directory: Path, seed: int = 0) -> Path:
    """A tiny Moirai checkpoint in `directory`, its weights drawn with `seed` (another seed:
    the same architecture, other weights)."""
    adapter = MoiraiAdapter(build_tiny_module(seed=seed), "test")
    adapter.save(adapter.model, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-moirai"))


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(1200)
    values = (
        10 + 3 * np.sin(2 * np.pi * t / 24) + np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.3, t.size)
    )
    dates = np.datetime64("2020-01-01T00") + t.astype("timedelta64[h]")
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    lines = ["date,OT"] + [
        f"{d.astype(str).replace('T', ' ')}:00:00,{v:.4f}"
        for d, v in zip(dates, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def other_csv(tmp_path_factory) -> Path:
    """Another series for multi-dataset and held-out checks: a 12-step season, a trend and more
    noise, 900 hourly rows."""
    rng = np.random.default_rng(1)
    t = np.arange(900)
    values = 5 + 0.01 * t + 2 * np.cos(2 * np.pi * t / 12) + rng.normal(0, 0.5, t.size)
    dates = np.datetime64("2021-01-01T00") + t.astype("timedelta64[h]")
    path = tmp_path_factory.mktemp("other") / "other.csv"
    rows = [
        f"{d.astype(str).replace('T', ' ')}:00:00,{v:.4f}"
        for d, v in zip(dates, values, strict=True)
    ]
    path.write_text("date,OT\n" + "\n".join(rows) + "\n")
    return path


TINY_SPACE = """
model = "tiny"
num_layers = 4
min_kept = 1
max_kept = 3

[realign]
steps = 2
lr = 1e-3
batch_size = 8

[forecast]
context_length = 64
horizon = 16
patch_size = 16

[evaluation]
val_windows = 16
num_samples = 20
"""


@pytest.fixture
def tiny_space(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def studies(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "studies"
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(root))
    return root


def options(tiny_model_dir, tiny_csv, tiny_space, **kw):
    """SearchOptions for a tiny study (study s1, 3 trials, CPU); keywords override."""
    from autoprune.search.options import SearchOptions

    base = dict(
        study="s1",
        model=str(tiny_model_dir),
        dataset=str(tiny_csv),
        space=str(tiny_space),
        trials=3,
        seed=0,
        device="cpu",
        threads=2,
    )
    return SearchOptions(**{**base, **kw})


def quiet(_message):
    pass


def search_command(study, model_dir, csv, space, trials, *extra: str) -> list[str]:
    """`autoprune search` as a subprocess runs it: the installed console script, CPU, 1 thread."""
    return [
        str(Path(sys.executable).with_name("autoprune")),
        "search",
        "--study", study,
        "--model", str(model_dir),
        "--dataset", str(csv),
        "--space", str(space),
        "--trials", str(trials),
        "--device", "cpu",
        "--threads", "1",
        *extra,
    ]  # fmt: skip


def family_round_trip(
    model_dir, csv, tmp_path, capsys, *, patch_size=16, horizon=16, num_samples=20, study="f1"
) -> tuple[Path, dict]:
    """What a user of any model family does on a tiny checkpoint: `autoprune search --trials 3`
    (4 layers, 2 re-align steps), `export` of the selection, then `evaluate --model EXPORT`,
    which must reproduce the test metrics stored at export. Returns the export and its metadata;
    the family's test then reloads the export with the family's own library."""
    from autoprune.cli import main
    from autoprune.export import read_metadata

    space = tmp_path / "family-space.toml"
    space.write_text(
        TINY_SPACE.replace("horizon = 16", f"horizon = {horizon}")
        .replace("patch_size = 16", f"patch_size = {patch_size}")
        .replace("num_samples = 20", f"num_samples = {num_samples}")
    )
    search = ["search", "--model", str(model_dir), "--dataset", str(csv), "--space", str(space)]
    search += ["--study", study, "--trials", "3", "--seed", "0", "--device", "cpu"]
    assert main([*search, "--threads", "1"]) == 0
    assert "Pareto front" in capsys.readouterr().out
    assert_screen_batches(study)
    export = tmp_path / "exported"
    assert main(["export", study, "--out", str(export), "--device", "cpu"]) == 0
    metadata = read_metadata(export)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(export), "--device", "cpu", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    for name in ("mase", "crps", "mse", "mae"):
        assert metrics[name] == pytest.approx(metadata["test"][name], rel=1e-6)
    return export, metadata


def assert_screen_batches(study: str) -> None:
    """The study's zero-shot screen ran its heads for several keep sets at once: one keep set at
    a time, with the family's own staged pass, gives the same numbers."""
    from autoprune.screen import SCREEN_WINDOWS, screen
    from autoprune.search.options import prepared_from_study
    from autoprune.study import study_dir

    stored = json.loads((study_dir(study) / "screen.json").read_text())["sets"]
    ctx = prepared_from_study(study, None, "cpu").ctx
    setting = ctx.setting
    windows = ctx.series.eval_windows(
        "val", setting.context_length, setting.horizon, SCREEN_WINDOWS
    )
    sets = [tuple(map(int, key.split())) for key in stored]
    alone = screen(
        ctx.adapter,
        ctx.adapter.model,
        windows,
        setting.horizon,
        setting.patch_size,
        ctx.series.seasonality,
        sets,
        batch=1,
    )
    for keep, values in alone.items():
        assert stored[" ".join(map(str, keep))] == pytest.approx(values, rel=1e-5), keep


@pytest.fixture(scope="session")
def family_checkpoint(tmp_path_factory, tiny_model_dir):
    """family name -> the directory of a tiny random checkpoint of that family, written once
    a session by the family's own library (tests/_families.py builds them; Moirai's is
    tiny_model_dir). Tests copy a checkpoint before changing it."""
    from tests._families import save_checkpoint

    saved = {"moirai": tiny_model_dir}

    def checkpoint(family: str) -> Path:
        if family not in saved:
            directory = tmp_path_factory.mktemp(f"tiny-{family}")
            save_checkpoint(family, directory)
            saved[family] = directory
        return saved[family]

    return checkpoint


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """`python scripts/NAME ARGS...` from the repository root, as its docstring says to run it."""
    script = Path(__file__).parents[1] / "scripts" / name
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)


# the tiny space's four 3-layer keep sets, then a 1-layer one that re-aligns below the
# hypervolume's reference (0.998 of the full model's MASE, the reference 1.1): it costs a third of
# the others' parameters, so with a latency that grows with the layers kept (STEADY_PROFILE) the
# 5th trained keep set adds most of the front's hypervolume, and after 5 the front is still growing
GROWING_AT_FIFTH = [(0, 2, 3), (1, 2, 3), (0, 1, 3), (0, 1, 2), (3,)]

# a latency profile that grows with the layers kept (each layer a tenth of the fixed cost).
# Measured live on a loaded machine, the least-squares fit of a 64-wide model can come out flat
# (0 ms per layer): every keep set's latency then equals the full model's, on the hypervolume's
# reference, and every front holds none (a test failed so with two suites on 2 cores)
STEADY_FIXED_MS, STEADY_PER_LAYER_MS = 4.0, 0.4
STEADY_PROFILE = {
    "fixed_ms": STEADY_FIXED_MS,
    "per_layer_ms": STEADY_PER_LAYER_MS,
    "r2": 1.0,
    "points": [[k, STEADY_FIXED_MS + STEADY_PER_LAYER_MS * k] for k in range(1, 5)],
    "device": "cpu",
    "batch": LATENCY_BATCH,
    "rounds": 15,
    "context_length": 64,
}


@pytest.fixture
def steady_latency(monkeypatch) -> dict:
    """Studies of this test take STEADY_PROFILE as their latency profile instead of measuring one,
    for tests whose assertions need the hypervolume that latency's objective gives."""
    import autoprune.search.cached as cached

    monkeypatch.setattr(cached, "fit_latency_profile", lambda ctx: dict(STEADY_PROFILE))
    return STEADY_PROFILE


def search_growing_at_fifth(opts, **kw) -> None:
    """`search` with --trials 5 of GROWING_AT_FIFTH, in that order, each to the full budget."""
    from autoprune.record import TrialRecord
    from autoprune.search.options import prepare
    from autoprune.search.run import search

    opts = dataclasses.replace(opts, trials=5)
    prep = prepare(opts)
    for keep in GROWING_AT_FIFTH:
        prep.study.enqueue_trial(
            prep.ctx.space.params_of(keep), TrialRecord(full_budget=True).attrs()
        )
    search(opts, prepared=prep, **kw)
