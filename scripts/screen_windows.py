"""What the zero-shot screen's window count costs and buys (docs/default-run.md).

Screens every keep set of a model's default search space on the default 64 validation windows
and on `--windows` others, in one process (so the two timings share the machine's state), and
prints JSON: each screen's seconds, and the Spearman rank correlation of the two screens' MASE,
overall, within each kept-layer count, and size-weighted within size.

    python scripts/screen_windows.py [--model moirai-tiny] [--dataset etth1] [--windows 32]

~1.5 min for the 4,094 keep sets of moirai-tiny on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from autoprune.data import load_series
from autoprune.evaluate import Setting
from autoprune.models import load_adapter
from autoprune.screen import SCREEN_WINDOWS, all_keep_sets, screen, spearman
from autoprune.space import space_for_model


def screened(adapter, series, setting, keeps, windows: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    table = screen(
        adapter,
        adapter.model,
        series.eval_windows("val", setting.context_length, setting.horizon, windows),
        setting.horizon,
        setting.patch_size,
        series.seasonality,
        keeps,
    )
    return np.array([table[k]["mase"] for k in keeps]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="moirai-tiny")
    parser.add_argument("--dataset", default="etth1")
    parser.add_argument("--windows", type=int, default=SCREEN_WINDOWS // 2)
    args = parser.parse_args()
    adapter = load_adapter(args.model)
    adapter.model.eval()
    series = load_series(args.dataset)
    setting = Setting.for_series(series, adapter)
    keeps = all_keep_sets(space_for_model(args.model, adapter.num_layers))
    default, default_s = screened(adapter, series, setting, keeps, SCREEN_WINDOWS)
    other, other_s = screened(adapter, series, setting, keeps, args.windows)
    sizes = np.array([len(k) for k in keeps])
    per_size = {int(k): spearman(default[sizes == k], other[sizes == k]) for k in np.unique(sizes)}
    ranked = {k: r for k, r in per_size.items() if r == r}  # sizes of fewer than 3 keep sets: nan
    counts = {k: int((sizes == k).sum()) for k in ranked}
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "keep_sets": len(keeps),
        "seconds": {str(SCREEN_WINDOWS): round(default_s, 1), str(args.windows): round(other_s, 1)},
        "spearman_overall": round(spearman(default, other), 4),
        "spearman_within_size": round(
            sum(r * counts[k] for k, r in ranked.items()) / sum(counts.values()), 4
        ),
        "spearman_per_size": {str(k): round(r, 3) if r == r else None for k, r in per_size.items()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
