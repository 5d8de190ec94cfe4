"""`scripts/rung_calibration.py` on a shipped exhaustive table: the figures
docs/search-efficiency.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_rest_of_the_budget_moves_keep_sets_by_size_as_the_readme_says():
    table = ROOT / "studies/bench/2026-12-02/truth-moirai-tiny-8-exchange-rate.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/rung_calibration.py"), str(table), "--draws", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    sizes = result["by_size"]
    assert sum(s["rows"] for s in sizes.values()) == result["rows"] == 254
    # small keep sets gain from the last 20 steps and vary; large ones mostly get worse
    assert sizes["2"]["d_mean"] == -0.095 and sizes["2"]["d_sd"] == 0.166
    assert sizes["7"]["worse_after_rung"] == 0.88 and sizes["6"]["d_mean"] == 0.068
    assert max(s["d_sd"] for k, s in sizes.items() if int(k) >= 5) < sizes["2"]["d_sd"]
