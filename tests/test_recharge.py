"""`scripts/recharge.py` on the shipped rebuilt tables: the README's estimate of what the
product's cheaper trials (no latency timing, one rung) do to the default's ratios."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_script

ROOT = Path(__file__).parents[1]
REBUILT = ROOT / "studies/bench/2026-12-05/rebuilt"


def recharge(*args: str) -> subprocess.CompletedProcess:
    return run_script("recharge.py", *args)


def test_the_default_on_etth1_costs_less_as_the_product_now_runs_and_its_ratio_stays():
    table = str(REBUILT / "truth-moirai-tiny-8-etth1.json")
    done = recharge(table, "--yardstick", str(REBUILT / "gp"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["truth-moirai-tiny-8-etth1.json"]
    # as the table charges it: the README's targets (38.5 s against GPSampler's 113.2 s)
    assert result["charged_s"] == pytest.approx(38.5, abs=0.05)
    assert result["yardstick_s"] == pytest.approx(113.2, abs=0.05)
    # without the latency timing (7% of a full trial here) and one of the two rung evaluations
    assert 0.90 < result["full_trial_share"] < 0.95
    assert 0.9 * result["charged_s"] < result["now_s"] < 0.95 * result["charged_s"]
    assert result["ratio"] == pytest.approx(0.340, abs=0.001)
    assert result["ratio_now"] == pytest.approx(result["ratio"], abs=0.005)


def test_a_table_the_default_misses_and_one_without_a_yardstick_say_so():
    ettm1, ili = (str(REBUILT / f"truth-moirai-tiny-8-{n}.json") for n in ("ettm1", "ili"))
    done = recharge(ettm1, ili)
    assert done.returncode == 0, done.stderr
    assert "ettm1.json: the default does not reach 95% within 100 trials" in done.stdout
    assert "ili.json: default 19.0 s -> 17.7 s (no yardstick)" in done.stdout
    missing = recharge(str(REBUILT / "truth-moirai-tiny-8-nowhere.json"))
    assert missing.returncode == 2 and missing.stderr.startswith("recharge: ")


def test_a_table_built_since_stop_52_is_refused_its_replays_charge_what_the_product_runs(
    tmp_path,
):
    """A table holding each rung's evaluation was built without the latency timing, and a
    replay charges the default only its rung: re-charging it would count the change twice."""
    import csv

    source = REBUILT / "truth-moirai-tiny-8-ili.json"
    copy = tmp_path / source.name
    copy.write_text(source.read_text())
    with open(source.with_suffix(".csv")) as fh:
        rows = list(csv.DictReader(fh))
    with open(copy.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, [*rows[0], "eval_r3", "eval_r10"])
        writer.writeheader()
        for row in rows:
            half = str(float(row["rungs_s"]) / 2) if row["rungs_s"] else ""
            writer.writerow(row | {"eval_r3": half, "eval_r10": half})
    done = recharge(str(copy))
    assert done.returncode == 2
    assert "holds each rung's evaluation" in done.stderr and "already charges" in done.stderr
