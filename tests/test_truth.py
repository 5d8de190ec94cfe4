"""The shipped ground-truth tables are measurements, not numbers to take on trust: a random row
of each, re-evaluated from scratch, reproduces."""

from pathlib import Path

import pytest

from autoprune.cli import main

BENCH = Path(__file__).resolve().parents[1] / "studies" / "bench"


@pytest.mark.slow
@pytest.mark.parametrize(
    "table", ["truth-moirai-tiny-8-etth1.json", "truth-moirai-tiny-etth1.json"]
)
def test_a_random_row_of_each_shipped_truth_table_reproduces(table, studies, capsys):
    code = main(["bench", "verify", "--truth", str(BENCH / table), "--rows", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "re-aligned: reproduced" in out and "zero-shot: reproduced" in out
