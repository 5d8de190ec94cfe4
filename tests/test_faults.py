"""kill -9 a running `autoprune search` at random moments, then run the same command again:
every trial that was complete before a kill must still be there with the same values (and, in a
multi-fidelity study, every keep set stopped at a rung with what it measured there), the study
must reach its total, and no keep set may be trained twice."""

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autoprune.record import TrialRecord
from autoprune.study import stored_study
from tests.conftest import TINY_SPACE, search_command

SLOW_SPACE = TINY_SPACE.replace("steps = 2", "steps = 60")


def completed(db: Path) -> dict[int, tuple]:
    """Trials trained to the full budget (their values) and keep sets stopped at a rung (where,
    and the rungs they measured): what a kill must never take away."""
    if not db.exists():
        return {}
    try:  # read-only: creating Optuna's tables beside the run makes its own creation fail
        study = stored_study("k", f"sqlite:///{db}")
    except Exception:  # noqa: BLE001 - not created yet
        return {}
    if study is None:
        return {}
    done = {
        t.number: tuple(t.values)
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if "lookup_of" not in t.user_attrs
    }
    for t in study.get_trials(states=(TrialState.PRUNED,)):
        record = TrialRecord.of(t)
        if record.stopped_at is not None:
            rungs = sorted((int(k), v["mase"]) for k, v in record.rungs.items())
            done[t.number] = ("stopped", record.stopped_at, *rungs)
    return done


@pytest.mark.slow
@pytest.mark.parametrize("fidelity", ["single", "multi"])
def test_kill_9_and_resume_loses_nothing(tiny_model_dir, tiny_csv, tmp_path, fidelity):
    space = tmp_path / "slow.toml"
    space.write_text(SLOW_SPACE)
    env = {**os.environ, "AUTOPRUNE_STUDIES_DIR": str(tmp_path / "studies"), "HF_HUB_OFFLINE": "1"}
    command = search_command("k", tiny_model_dir, tiny_csv, space, 10, "--fidelity", fidelity)
    db = tmp_path / "studies" / "k" / "study.db"
    rng = random.Random(0)
    seen: dict[int, tuple] = {}
    kills = 0
    for _ in range(4):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        target = len(seen) + rng.randint(1, 2)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None and len(completed(db)) < target:
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 0.6))  # land anywhere: in a fine-tune, a write, the report
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        now = completed(db)
        for number, values in seen.items():
            assert now.get(number) == values, f"trial {number} changed or vanished"
        seen = now
    # the study is (nearly) done: the next runs go through the test evaluation, the selected
    # checkpoint and the report - kill them there too, then check nothing is half-written
    study_dir = tmp_path / "studies" / "k"
    for _ in range(3):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(2.0, 8.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        _assert_whole(study_dir)
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    _assert_whole(study_dir)
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{db}")
    trained = [
        t
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if "lookup_of" not in t.user_attrs
    ]
    assert completed(db).items() >= seen.items()
    keeps = [tuple(t.user_attrs["keep"]) for t in trained]
    assert len(trained) >= 10 and len(set(keeps)) == len(keeps)
    assert kills >= 5
    print(f"survived {kills} kills; {len(trained)} trials complete")


def _assert_whole(study_dir: Path) -> None:
    """Whatever a kill left: every report file that exists parses, and the selected checkpoint
    (if there) reloads in uni2ts; only hidden temporaries may be left over."""
    report = study_dir / "report"
    if (report / "summary.json").exists():
        json.loads((report / "summary.json").read_text())
    if (report / "front.csv").exists():
        assert (report / "front.csv").read_text().endswith("\n")
    selected = study_dir / "selected"
    if selected.exists():
        from uni2ts.model.moirai import MoiraiModule

        MoiraiModule.from_pretrained(selected)
        json.loads((selected / "autoprune.json").read_text())
    visible = [p.name for p in study_dir.iterdir() if not p.name.startswith(".")]
    assert set(visible) <= {"study.db", "report", "selected", "screen.json", "study.db-journal"}, (
        visible
    )
