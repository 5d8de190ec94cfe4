"""`scripts/supernet_screen.py` on a shipped exhaustive table (docs/search-efficiency.md, "A
shared re-alignment as the screen")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from autoprune.bench.replay import Table
from autoprune.bench.truth import load_truth

ROOT = Path(__file__).parents[1]
TABLE = ROOT / "studies/bench/2026-12-05/rebuilt/truth-moirai-tiny-8-etth1.json"


def supernet_screen(*args: str) -> subprocess.CompletedProcess:
    script = ROOT / "scripts/supernet_screen.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)


def test_with_no_steps_the_supernet_screen_is_the_tables_own_and_with_steps_it_moves(tmp_path):
    """Untrained, the shared weights are the full model's: every keep set screens as the table
    screened it. Trained a few steps (each on one keep set's layers, all of them put back after
    it), the screen moves, and the copy it writes is a table a replay reads, paying the
    supernet."""
    done = supernet_screen(str(TABLE), "--steps", "0", "--out", str(tmp_path / "zero"))
    assert done.returncode == 0, done.stderr
    table = Table.load(*load_truth(TABLE))
    same = Table.load(*load_truth(tmp_path / "zero" / TABLE.name))
    assert same.keeps == table.keeps
    np.testing.assert_allclose(same.screen, table.screen, rtol=1e-5)
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert lines["zs_mase"].split()[1:5] == lines["sn_mase"].split()[1:5]

    done = supernet_screen(str(TABLE), "--steps", "5", "--out", str(tmp_path / "five"))
    assert done.returncode == 0, done.stderr
    moved = Table.load(*load_truth(tmp_path / "five" / TABLE.name))
    assert not np.allclose(moved.screen, table.screen, rtol=1e-3)
    assert moved.screen_cost > 0 and moved.values.tolist() == table.values.tolist()


def test_a_missing_table_is_a_clear_error():
    done = supernet_screen("no-such-table.json")
    assert done.returncode == 2 and "bench truth" in done.stderr
