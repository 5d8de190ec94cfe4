"""Distillation against plain data re-alignment on a fixed set of keep sets (README, "Search
spaces", `[realign] mode`).

For each dataset, the same keep sets (drawn once by a seeded rule: one per size in `--sizes`,
each a uniform random subset of the layers) are pruned from the model, re-aligned with each mode
under the shipped budget and seed, and measured: validation MASE (the objective), test MASE
(every test window), the seconds of re-alignment (teacher forward passes included for
distillation), and the hypervolume of the (validation MASE, params) front of those keep sets,
normalised by the re-aligned full model as `autoprune.pareto` does for studies. The hypervolume
is reported against the plain re-aligned full model (one yardstick for both modes) and against
each mode's own re-aligned full model; the reference point is `hv_reference` (1.1 x the full
model's error), and a looser one (2.0 x) is added because a few fixed keep sets can all fall
outside 1.1 x.

    AUTOPRUNE_DATA_DIR=/work/shared/data nice -n 5 python scripts/distill_evidence.py \\
        --datasets etth1 etth2 exchange-rate --modes data distill:1.0 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from autoprune.data import load_series
from autoprune.evaluate import Setting
from autoprune.models import load_adapter
from autoprune.objective import TrialContext, _evaluate, realign, test_metrics
from autoprune.pareto import hv_reference, hypervolume, non_dominated, normalise
from autoprune.space import space_for_model

OBJECTIVES = ("mase", "params")
LOOSE_REFERENCE = np.array([2.0, 1.0])


def keep_sets(num_layers: int, sizes: list[int], seed: int) -> list[tuple[int, ...]]:
    """One keep set per size, each a uniform random subset of the layers, from one seeded
    generator: the same list for every mode and dataset."""
    rng = np.random.default_rng(seed)
    return [tuple(sorted(int(i) for i in rng.choice(num_layers, k, replace=False))) for k in sizes]


def parse_mode(text: str) -> dict:
    """`data`, or `distill:W` (W = the teacher's share of the loss), each optionally `@STEPS`
    for another step budget (`data@72`: plain re-alignment with the seconds distillation takes)."""
    text, _, steps = text.partition("@")
    budget = {"steps": int(steps)} if steps else {}
    if text == "data":
        return {"mode": "data", **budget}
    kind, _, weight = text.partition(":")
    if kind != "distill":
        raise SystemExit(f"--modes {text!r}: write data or distill:WEIGHT, optionally @STEPS")
    return {"mode": "distill", "distill_weight": float(weight or 1.0), **budget}


def measure(ctx: TrialContext, keep: tuple[int, ...]) -> dict:
    model = ctx.adapter.prune(keep).to(ctx.device)
    start = time.perf_counter()
    losses = realign(ctx, model)
    realign_s = time.perf_counter() - start
    val = _evaluate(ctx, model, "val", ctx.space.val_windows)
    test = test_metrics(ctx, model)
    return {
        "keep": list(keep),
        "kept": len(keep),
        "params": ctx.adapter.params(keep),
        "val_mase": val["mase"],
        "val_crps": val["crps"],
        "test_mase": test["mase"],
        "test_crps": test["crps"],
        "realign_s": round(realign_s, 3),
        "loss_last": losses[-1] if losses else None,
    }


def front_hv(rows: list[dict], full: dict, reference: np.ndarray) -> float:
    points = np.array([[r["val_mase"], r["params"]] for r in rows], dtype=float)
    normalised = normalise(points, [full["val_mase"], full["params"]])
    return hypervolume(normalised[non_dominated(normalised)], reference)


def run_dataset(dataset: str, model: str, modes: list[str], sets, seed: int, log) -> dict:
    adapter = load_adapter(model)
    series = load_series(dataset)
    base = space_for_model(model, adapter.num_layers)
    setting = Setting.for_series(
        series, adapter, base.context_length, base.horizon, base.patch_size
    )
    everything = tuple(range(adapter.num_layers))
    result = {"dataset": dataset, "setting": setting.__dict__, "modes": {}}
    for text in modes:
        space = replace(base, realign=replace(base.realign, **parse_mode(text)))
        ctx = TrialContext(adapter, series, setting, space, torch.device("cpu"), seed)
        full = measure(ctx, everything)
        log(f"{dataset} {text}: full model val {full['val_mase']:.4f} test {full['test_mase']:.4f}")
        rows = []
        for keep in sets:
            rows.append(measure(ctx, keep))
            r = rows[-1]
            log(
                f"{dataset} {text} {keep}: val {r['val_mase']:.4f} test {r['test_mase']:.4f} "
                f"({r['realign_s']:.1f} s)"
            )
        result["modes"][text] = {
            "realign": space.realign.settings(),
            "full": full,
            "rows": rows,
            "mean_val_mase": float(np.mean([r["val_mase"] for r in rows])),
            "mean_test_mase": float(np.mean([r["test_mase"] for r in rows])),
            "mean_realign_s": float(np.mean([r["realign_s"] for r in rows])),
        }
    plain = result["modes"][modes[0]]["full"]
    for entry in result["modes"].values():
        for label, reference in (("hv", hv_reference(OBJECTIVES)), ("hv_loose", LOOSE_REFERENCE)):
            entry[label] = front_hv(entry["rows"], plain, reference)
            entry[label + "_own_full"] = front_hv(entry["rows"], entry["full"], reference)
    return result


def markdown(results: list[dict], modes: list[str]) -> str:
    lines = [
        "| dataset | mode | full val / test | mean val MASE | mean test MASE | test wins | "
        "HV (1.1x) | HV (2x) | s / re-alignment |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        plain = res["modes"][modes[0]]
        for text in modes:
            e = res["modes"][text]
            wins = sum(
                a["test_mase"] < b["test_mase"]
                for a, b in zip(e["rows"], plain["rows"], strict=True)
            )
            wins = f"{wins} of {len(e['rows'])}" if e is not plain else "-"
            lines.append(
                f"| {res['dataset']} | {text} | {e['full']['val_mase']:.3f} / "
                f"{e['full']['test_mase']:.3f} | {e['mean_val_mase']:.4f} | "
                f"{e['mean_test_mase']:.4f} | {wins} | {e['hv']:.4f} | "
                f"{e['hv_loose']:.4f} | {e['mean_realign_s']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="moirai-tiny")
    parser.add_argument("--datasets", nargs="+", default=["etth1", "etth2", "exchange-rate"])
    parser.add_argument("--modes", nargs="+", default=["data", "distill:1.0"])
    parser.add_argument("--sizes", default="2,3,4,5,6,7,8,9,10,4,6,8")
    parser.add_argument("--keep-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("studies/bench/distill"))
    args = parser.parse_args()
    if args.modes[0] != "data":
        raise SystemExit("--modes must start with data (the yardstick)")
    torch.set_num_threads(args.threads)
    adapter = load_adapter(args.model)
    sizes = [int(s) for s in args.sizes.split(",")]
    sets = keep_sets(adapter.num_layers, sizes, args.keep_seed)
    del adapter
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for dataset in args.datasets:
        start = time.perf_counter()
        res = run_dataset(dataset, args.model, args.modes, sets, args.seed, print)
        res.update(
            model=args.model,
            keep_sets=[list(k) for k in sets],
            seed=args.seed,
            keep_seed=args.keep_seed,
            threads=args.threads,
            wall_s=round(time.perf_counter() - start, 1),
        )
        (args.out / f"{dataset}.json").write_text(json.dumps(res, indent=2) + "\n")
        results.append(res)
    table = markdown(results, args.modes)
    print(table)
    (args.out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
