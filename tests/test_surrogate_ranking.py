"""`scripts/surrogate_ranking.py` on shipped exhaustive tables: the figures
docs/search-efficiency.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
TABLES = ROOT / "studies/bench/2026-12-02"


def ranking_of(dataset: str, *args: str) -> subprocess.CompletedProcess:
    table = TABLES / f"truth-moirai-tiny-8-{dataset}.json"
    script = ROOT / "scripts/surrogate_ranking.py"
    return subprocess.run(
        [sys.executable, str(script), str(table), *args], capture_output=True, text=True
    )


def test_the_surrogate_ranks_ili_far_better_than_exchange_rate_and_the_front_needs_the_best():
    ili, exchange = (
        json.loads(ranking_of(d, "--trained", "30", "--draws", "3").stdout)
        for d in ("ili", "exchange-rate")
    )
    assert exchange["ranking"]["30"]["mean"] < 0.3 < 0.6 < ili["ranking"]["30"]["mean"]
    # the best keep set of every size is the whole true front; the second best of each is not
    for result in (ili, exchange):
        shares = [result["hv_at_rank"][r] for r in ("1", "2", "3", "5")]
        assert shares[0] == 1.0 and shares == sorted(shares, reverse=True)
    assert exchange["hv_at_rank"]["3"] < 0.95 and ili["hv_at_rank"]["2"] < 0.95


def test_bad_arguments_say_what_is_wrong():
    done = ranking_of("ili", "--trained", "1")
    assert done.returncode == 2 and "--trained must lie in 2..250" in done.stderr
