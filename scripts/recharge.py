"""The default's compute to 95% over the yardstick's, re-charged as the product's trials now run
(README, "Search efficiency").

    python scripts/recharge.py TABLE.json ... --yardstick REPLAY.json|FOLDER ... [--json]

For tables built before stop 52: their trials timed their own forward pass and evaluated both
rungs; since 2026-12-06 a search's trials do neither (a multi-fidelity trial evaluates only the
rung its stop rule reads), and replays charge each table's measured costs. (A table built since
holds each rung's evaluation, and its replays charge exactly what the product runs; this
refuses it.) This replays the default (`screened-mf`,
as measured: seed 0, no noise) on each table and charges its ledger again: each full
re-alignment less the latency timing (estimated as the 9 forward passes it timed, at the row's
predicted latency, median by size) and less one rung evaluation (half the row's two, which
cost the same: the same model on the same 64 windows), each stopped keep set less one rung
evaluation. The yardstick (the best off-the-shelf sampler's compute to 95% in the `--yardstick`
replays without noise, as `scripts/targets.py` picks it) is scaled by the table's mean share of
a full trial left without the latency timing: an estimate, since its replays keep no keep sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna

from autoprune.bench.replay import (
    BUDGET,
    Table,
    median_by_size,
    read,
    replay_files,
    replay_one,
    strategies,
)
from autoprune.bench.targets import DEFAULT, Compute, best_of, grouped, yardstick
from autoprune.bench.truth import load_truth
from autoprune.errors import AutoPruneError
from autoprune.objective import LATENCY_REPEATS, LATENCY_WARMUP

LEVEL = 0.95


def yardsticks(paths: list[Path]) -> dict[str, Compute]:
    """Per table file name, the yardstick's compute to 95% without noise, as `targets` picks it
    (`best_of`), where its median got there."""
    replays = [(str(f), yardstick(read(f))) for f in replay_files(paths)]
    best = {}
    for (table, noise), group in grouped(replays).items():
        runs = {name: run for (name, warm), (_, run) in group.items() if warm is None}
        if noise == 0 and (found := best_of(runs)) is not None and found[1].exact:
            best[table] = found[1]
    return best


def recharge(table: Table, rows: list[dict]) -> dict:
    """The default's compute to 95% as the table charges it and as the product now runs, and
    the share of a full trial left once the latency timing is gone."""
    kept = np.array([len(r["keep"]) for r in rows])
    timed = LATENCY_WARMUP + LATENCY_REPEATS
    latency_s = median_by_size(kept, timed * np.array([r["latency_ms"] for r in rows]) / 1000)
    rung_s = median_by_size(kept, np.array([r["rungs_s"] for r in rows])) / len(table.rungs)
    index = {keep: i for i, keep in enumerate(table.keeps)}
    ledger: list = []
    curve, compute, _, _ = replay_one(table, strategies(table)[DEFAULT], 0, BUDGET, ledger)
    hit = next((i for i, v in enumerate(curve) if v >= LEVEL - 1e-9), None)
    share = float(np.mean((table.costs["full"] - latency_s) / table.costs["full"]))
    if hit is None:
        return {"reached": False, "full_trial_share": share}
    now, trained = 0.0, 0
    for keep, charge, cost in ledger:
        if charge == "screen":
            now += cost
            continue
        i = index[keep]
        now += cost - rung_s[i] - (latency_s[i] if charge == "full" else 0.0)
        trained += charge == "full"
        if trained == hit + 1:
            break
    return {"reached": True, "charged_s": compute[hit], "now_s": now, "full_trial_share": share}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", type=Path, nargs="+", help="exhaustive tables (bench truth)")
    parser.add_argument(
        "--yardstick", type=Path, action="append", default=[], help="replay file or folder"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        best = yardsticks(args.yardstick)
        result = {}
        for path in args.tables:
            meta, rows = load_truth(path)
            table = Table.load(meta, rows)
            if not table.rungs:
                raise AutoPruneError(f"{path} has no rungs: no multi-fidelity default to replay")
            if table.charges_each_rung:
                raise AutoPruneError(
                    f"{path} holds each rung's evaluation (built since stop 52): `bench replay` "
                    "already charges the default only the rung it evaluates, and its trials were "
                    "not timed; re-charging it would count both twice"
                )
            found = recharge(table, [r for r in rows if r["mase"] is not None])
            if found["reached"] and path.name in best:
                old = best[path.name].seconds
                new = old * found["full_trial_share"]
                found |= {"yardstick_s": old, "yardstick_now_s": new}
                found |= {"ratio": found["charged_s"] / old, "ratio_now": found["now_s"] / new}
            result[path.name] = found
    except (AutoPruneError, OSError, ValueError, KeyError) as error:
        parser.exit(2, f"recharge: {error}\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, r in result.items():
        if not r["reached"]:
            print(f"{name}: the default does not reach 95% within {BUDGET} trials")
        elif "ratio" in r:
            print(
                f"{name}: default {r['charged_s']:.1f} s -> {r['now_s']:.1f} s, yardstick "
                f"{r['yardstick_s']:.1f} s -> ~{r['yardstick_now_s']:.1f} s; over it "
                f"{r['ratio']:.3f} -> ~{r['ratio_now']:.3f}"
            )
        else:
            print(f"{name}: default {r['charged_s']:.1f} s -> {r['now_s']:.1f} s (no yardstick)")


if __name__ == "__main__":
    main()
