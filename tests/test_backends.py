"""Backend choice without starting Ray: a local run never imports it, and bad Ray options are one
line and exit 2 before the study does any work."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from autoprune.cli import main


def test_a_local_search_never_imports_ray():
    code = (
        "import sys\n"
        "from autoprune import cli, search, bench, baselines\n"
        "from autoprune.backends import local\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'ray'], 'ray imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "ray", "--workers", "0"], "--workers 0 must be at least 1"),
        (["--workers", "2"], "--workers only apply to --backend ray"),
        (["--backend", "ray", "--cpus-per-trial", "0"], "--cpus-per-trial 0 must be more than 0"),
        (["--backend", "ray", "--gpus-per-trial", "-1"], "--gpus-per-trial -1 must be 0 or more"),
        (["--backend", "ray", "--address", "nohost"], "is not auto or HOST:PORT"),
        (["--backend", "ray", "--address", "127.0.0.1:1"], "no Ray head answers there"),
    ],
)
def test_bad_ray_options_are_one_line(argv, message, capsys, studies):
    assert main(["search", "--study", "never", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (studies / "never").exists()  # refused before anything was created


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_per_trial_without_a_gpu_is_one_line(capsys, studies):
    assert main(["search", "--study", "never", "--backend", "ray", "--gpus-per-trial", "1"]) == 2
    err = capsys.readouterr().err
    assert "--gpus-per-trial 1 needs a GPU and this machine has none" in err
    assert err.count("\n") == 1


def test_trials_under_way_count_against_a_compute_budget():
    """Several Ray workers: a trial under way counts as the study's mean trial, so no worker
    starts one the budget cannot pay for (one process overshoots by its last trial alone)."""
    from types import SimpleNamespace

    import optuna

    from autoprune.backends.local import stop_reason

    study = optuna.create_study(directions=["minimize"])
    for seconds in (2.0, 4.0):  # two trained trials: 6 s spent, 3 s a trial
        study.add_trial(optuna.trial.create_trial(values=[1.0], user_attrs={"wall_s": seconds}))
    space = SimpleNamespace(size=100)
    assert stop_reason(study, space, 50, in_flight=0, compute=8.0) is None
    assert stop_reason(study, space, 50, in_flight=1, compute=8.0) == "budget"  # 6 + 3 >= 8
    assert stop_reason(study, space, 50, in_flight=1, compute=10.0) is None
    assert stop_reason(study, space, 50, in_flight=2, compute=10.0) == "budget"
    assert stop_reason(study, space, 50, in_flight=0, compute=6.0) == "budget"


def test_a_killed_ray_runs_scratch_folder_is_removed_by_the_next(tmp_path, monkeypatch):
    """Tune's scratch folder carries the driver's pid: the next run removes those of dead
    drivers, and leaves a live driver's and any folder it did not name."""
    from autoprune.backends.ray import scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is free now (reuse within this test is not a worry on Linux)
    dead = tmp_path / f"autoprune-ray-{gone.pid}-abc"
    live = tmp_path / f"autoprune-ray-{os.getpid()}-def"
    other = tmp_path / "autoprune-ray-x1y2z3"  # not ours to judge: no pid in its name
    for folder in (dead, live, other):
        (folder / "r").mkdir(parents=True)
    new = Path(scratch_folder())
    assert not dead.exists() and live.exists() and other.exists()
    assert new.parent == tmp_path and new.name.startswith(f"autoprune-ray-{os.getpid()}-")
