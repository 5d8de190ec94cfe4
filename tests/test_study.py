"""Where a study lives: storages created by processes that start together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import autoprune
from autoprune.record import TrialRecord, mark
from autoprune.study import COMPUTE_ATTR, RetryAsQueued, spending
from tests.test_storage_rdb import postgres_url

CREATE = """
import sys, time, optuna
from autoprune.study import create_or_resume
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
settings = {"objectives": ["mase", "params"]}
storage = sys.argv[2] or None
create_or_resume("together", storage, settings, optuna.samplers.RandomSampler())
"""


def empty_postgres_schema() -> str:
    """The test server's URL with a new, empty schema as the search path: a database in which
    Optuna's tables do not exist yet."""
    import psycopg

    url, schema = postgres_url(), f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    return f"{url}?options=-csearch_path%3D{schema}"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_searches_started_at_the_same_instant_on_a_new_study_all_open_it(studies, kind):
    """Without the lock (SQLite) or the retry (a database server) one of them died in Optuna's
    schema creation (`alembic_version` UNIQUE, or a table or type that already exists)."""
    storage = empty_postgres_schema() if kind == "postgresql" else ""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(autoprune.__file__).parents[1]),
        "AUTOPRUNE_STUDIES_DIR": str(studies),
    }
    start = time.time() + 4  # after every process has imported optuna
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(start), storage],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = [run.stderr.read() for run in runs if run.wait() != 0]
    assert not failures, failures[0].strip().splitlines()[-1]


def test_a_study_opened_between_its_creation_and_its_settings_waits_for_them(studies):
    """Optuna creates the study, then its creator writes the settings: a search that opens it in
    between (seen with PostgreSQL, four searches started together) read no settings and refused
    the study as created with other ones."""
    import threading

    import optuna

    from autoprune.study import SETTINGS_ATTR, create_or_resume, open_storage, storage_url

    settings = {"objectives": ["mase", "params"]}
    bare = optuna.create_study(
        study_name="late", storage=open_storage(storage_url("late")), directions=["minimize"] * 2
    )
    writer = threading.Timer(0.5, bare.set_user_attr, (SETTINGS_ATTR, settings))
    writer.start()
    study = create_or_resume("late", None, settings)
    writer.join()
    assert study.user_attrs[SETTINGS_ATTR] == settings


def test_a_compute_step_the_report_does_not_know_is_refused():
    """A misspelt step would be recorded and never shown: `spending` refuses it up front."""
    study = optuna.create_study()
    with spending(study, "screen"):
        pass
    assert set(study.user_attrs[COMPUTE_ATTR]) == {"screen"}
    with pytest.raises(ValueError, match="scren"), spending(study, "scren"):
        pass
    assert set(study.user_attrs[COMPUTE_ATTR]) == {"screen"}


def test_a_retry_repeats_a_chosen_keep_set_but_not_part_of_one(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, directions=["minimize"])
    layer = optuna.distributions.CategoricalDistribution((True, False))
    chosen, partial = study.ask(), study.ask()
    for trial, names in ((chosen, ("layer_00", "layer_01")), (partial, ("layer_00",))):
        for name in names:
            trial.suggest_categorical(name, layer.choices)
    mark(chosen, keep=[0] if chosen.params["layer_00"] else [1])
    study.enqueue_trial({"layer_00": True, "layer_01": True}, TrialRecord(baseline="bi").attrs())
    enqueued = study.ask()
    enqueued.suggest_categorical("layer_00", layer.choices)  # died before choosing the rest
    retry = RetryAsQueued(max_retry=1)
    for trial in (chosen, partial, enqueued):
        retry(study, storage.get_trial(trial._trial_id))
    again = {
        t.system_attrs["failed_trial"]: t for t in study.get_trials(states=[TrialState.WAITING])
    }
    assert again[chosen.number].params == chosen.params  # the same keep set again
    assert again[partial.number].params == {}  # the sampler chooses the retry's whole keep set
    # an enqueued keep set is repeated whole, with what it was enqueued with
    assert again[enqueued.number].params == {}
    assert again[enqueued.number].system_attrs["fixed_params"] == {
        "layer_00": True,
        "layer_01": True,
    }
    assert again[enqueued.number].user_attrs == {"baseline": "bi"}


def test_a_trial_cut_short_by_ctrl_c_is_not_reported_with_a_traceback():
    """Ctrl-C mid-trial: the command says it was interrupted; Optuna's warning with the trial's
    traceback is dropped, while a trial that fails for a reason is still reported."""
    import logging

    from autoprune.study import quiet_optuna

    quiet_optuna()
    seen: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = seen.append
    root = logging.getLogger("optuna")
    root.addHandler(catcher)
    try:
        study = optuna.create_study()

        def interrupted(trial):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            study.optimize(interrupted, n_trials=1)
        assert seen == []
        study.optimize(lambda trial: 1 / 0, n_trials=1, catch=(ZeroDivisionError,))
        assert [r.exc_info[0] for r in seen if r.exc_info] == [ZeroDivisionError]
        assert any("Trial 1 failed with value None" in r.getMessage() for r in seen)
    finally:
        root.removeHandler(catcher)


HOT_JOURNAL = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA cache_size=1")  # pages spill to the file mid-transaction, the journal first
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE half_written (x BLOB)")
for _ in range(200):
    db.execute("INSERT INTO half_written VALUES (randomblob(4000))")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_study_a_kill_9_left_mid_write_opens_at_its_last_commit(tmp_path):
    """A process killed mid-write leaves a hot journal beside the SQLite file. Read-only, SQLite
    cannot roll it back, so the storage check took the study for a foreign file and refused it
    (CI, 2026-12-06: the kill -9 test's last run stopped with 'is not a SQLite database'). It is
    rolled back as any SQLite client does, and the study opens as last committed."""
    from autoprune.study import open_storage, stored_study

    path = tmp_path / "study.db"
    url = f"sqlite:///{path}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    killed = subprocess.run([sys.executable, "-c", HOT_JOURNAL, str(path)])
    assert killed.returncode == -9 and (tmp_path / "study.db-journal").stat().st_size > 0
    reopened = stored_study("s", url)  # read-only commands (report, list, export)
    assert reopened is not None and len(reopened.get_trials()) == 2
    assert not (tmp_path / "study.db-journal").exists()  # rolled back: nothing half-written
    resumed = optuna.load_study(study_name="s", storage=open_storage(url))  # search resumes
    resumed.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    assert len(resumed.get_trials()) == 3
