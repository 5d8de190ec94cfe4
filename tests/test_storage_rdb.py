"""Optuna-native distribution: several `autoprune search` processes, each with its own studies
folder as if on its own machine, pointed at one RDB storage, share one study - every process
trains some of the keep sets, none is trained twice, and the study stops at its total.

SQLite runs everywhere; PostgreSQL runs against the real server named by
AUTOPRUNE_TEST_POSTGRES_URL (`.ci/run` starts one on loopback with
scripts/postgres-test-server.sh) and is skipped, saying why, when there is none."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import optuna
import pytest

from autoprune.study import trained_trials
from tests.conftest import TINY_SPACE, search_command

POSTGRES_ENV = "AUTOPRUNE_TEST_POSTGRES_URL"
SLOW_SPACE = TINY_SPACE.replace("steps = 2", "steps = 100")
TARGET = 10  # of the 14 keep sets of the tiny space


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (scripts/postgres-test-server.sh)")
    try:
        import psycopg  # the driver SQLAlchemy 2.1 uses for postgresql:// URLs
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[test]'")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {str(exc).strip()[:200]}")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return postgres_url()


def trained(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return trained_trials(optuna.load_study(study_name=name, storage=storage))
    except Exception:  # noqa: BLE001 - the study (or its tables) is not created yet
        return []


@pytest.mark.slow
def test_two_processes_share_one_study_without_training_a_keep_set_twice(
    tiny_model_dir, tiny_csv, tmp_path, storage
):
    space = tmp_path / "slow.toml"
    space.write_text(SLOW_SPACE)
    name = f"shared-{uuid.uuid4().hex[:8]}"
    command = search_command(name, tiny_model_dir, tiny_csv, space, TARGET, "--storage", storage)
    processes = []
    try:
        for machine in ("a", "b"):
            env = {**os.environ, "AUTOPRUNE_STUDIES_DIR": str(tmp_path / machine)}
            processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True))  # fmt: skip
            time.sleep(1)  # a creates the study, b joins it
        for process in processes:
            _, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr[-3000:]
        study = optuna.load_study(study_name=name, storage=storage)
        done = trained_trials(study)
        keeps = [tuple(t.user_attrs["keep"]) for t in done]
        assert len(keeps) == len(set(keeps))  # no keep set trained twice
        assert len(done) == TARGET  # the total is a total: neither trains one more in flight
        workers = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in done}
        assert workers == {p.pid for p in processes}  # both did part of the work
    finally:
        for process in processes:
            process.kill()
        if storage.startswith("postgresql") and trained(storage, name):
            optuna.delete_study(study_name=name, storage=storage)
