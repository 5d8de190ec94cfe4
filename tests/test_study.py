"""Where a study lives: storages created by processes that start together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import autoprune

CREATE = """
import sys, time, optuna
from autoprune.study import create_or_resume
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
settings = {"objectives": ["mase", "params"]}
create_or_resume("together", None, settings, optuna.samplers.RandomSampler())
"""


def test_searches_started_at_the_same_instant_on_a_new_study_all_open_it(studies):
    """Without the lock one of them died in Optuna's schema creation (`alembic_version`
    UNIQUE, or a table that already exists)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(autoprune.__file__).parents[1]),
        "AUTOPRUNE_STUDIES_DIR": str(studies),
    }
    start = time.time() + 4  # after every process has imported optuna
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(start)], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    failures = [run.stderr.read() for run in runs if run.wait() != 0]
    assert not failures, failures[0].strip().splitlines()[-1]
