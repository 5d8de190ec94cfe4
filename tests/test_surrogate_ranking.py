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
    # where each cheaper fidelity puts a size's best keep set: ILI's 10-step rung finds the best
    # of 3-5 layers first; exchange-rate's puts those of 2 and 3 layers past the 10th
    for result in (ili, exchange):
        ranks = result["best_rank"]
        assert ranks["size"] == [1, 2, 3, 4, 5, 6, 7] and ranks["keep sets"][2] == 56
        for name in ("screen", "rung 3", "rung 10"):
            assert all(1 <= r <= n for r, n in zip(ranks[name], ranks["keep sets"], strict=True))
    assert ili["best_rank"]["rung 10"][2:5] == [1, 1, 1]
    assert min(exchange["best_rank"]["rung 10"][1:3]) > 10


def test_bad_arguments_say_what_is_wrong():
    done = ranking_of("ili", "--trained", "1")
    assert done.returncode == 2 and "--trained must lie in 2..250" in done.stderr
