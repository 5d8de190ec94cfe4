"""`scripts/layer_effects.py` on shipped exhaustive tables: the figures
docs/search-efficiency.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
TABLES = ROOT / "studies/bench/2026-12-02"


def layer_effects(*tables: Path) -> subprocess.CompletedProcess:
    script = ROOT / "scripts/layer_effects.py"
    return subprocess.run(
        [sys.executable, str(script), *map(str, tables)], capture_output=True, text=True
    )


def test_the_screen_tells_which_layers_matter_and_layer_6_is_better_dropped():
    names = ("etth1", "exchange-rate", "ettm1")
    done = layer_effects(*(TABLES / f"truth-moirai-tiny-8-{n}.json" for n in names))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["spearman"] for r in results] == [0.79, 0.45, 0.4]
    for r in results:
        # keeping layer 6 hurts re-aligned accuracy on every table, and the screen sees it
        assert r["realigned"][6] < 0 and r["screen"][6] == min(r["screen"])


def test_a_sampled_table_is_refused_in_words():
    done = layer_effects(ROOT / "studies/bench/truth-moirai-tiny-etth1.json")
    assert done.returncode == 2 and "holds part of its space" in done.stderr
