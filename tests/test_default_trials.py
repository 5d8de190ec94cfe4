"""`scripts/default_trials.py`: the default study's trial count (30, on while the front is still
growing, to at most 45) replayed on the shipped replays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_script

ROOT = Path(__file__).parents[1]
DESIGN = ROOT / "studies/bench/2026-12-06/screen-back/design"


def default_trials(*args: str) -> subprocess.CompletedProcess:
    return run_script("default_trials.py", *args)


def test_the_rule_goes_on_only_while_growing_and_a_replay_that_ended_holds_flat():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from default_trials import rule_stops
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    settled = [0.5] * 20 + [1.0] * 20  # held 95% at the 21st of 40: not growing at 30
    assert rule_stops(settled) == 30
    growing = [0.5] * 29 + [1.0] * 11  # at the 30th: on to 37 (the 30th then falls before 29.6)
    assert rule_stops(growing) == 37
    assert rule_stops([0.5] * 29 + [1.0]) == 37  # a replay that found the front at 30: flat after
    late = [0.5] * 29 + [0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.9, 1.0] + [1.0] * 10
    assert rule_stops(late) == 45  # every new gain re-opens it, to the maximum


def test_on_the_design_tables_the_rule_goes_on_for_some_seeds_and_never_holds_less():
    done = default_trials(str(DESIGN), "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["table"]: r for r in json.loads(done.stdout)}
    assert len(rows) == 7
    etth1 = rows["truth-moirai-tiny-8-etth1.json"]
    assert (etth1["went_on"], etth1["seeds"]) == (4, 12)
    assert all(30 <= t <= 45 for r in rows.values() for t in r["trials"])
    for r in rows.values():
        shares = list(r["median_share"].values())
        assert shares[0] <= shares[1] <= shares[2]  # fixed 30, the rule, fixed 45
    assert rows["truth-moirai-tiny-8-ili.json"]["median_share"]["the rule"] == pytest.approx(1.0)
