"""What a Moirai re-alignment step and a forecast's sampling cost, the way autoprune runs them
against the way uni2ts's own forward and sampler do, measured in one process (README,
"Benchmarks"). Prints JSON.

- step: one re-alignment step's forward and backward (moirai-tiny, ETTh1, batch 32, patch 32)
  for keep sets of 1, 4 and 12 layers: `uni2ts` = the module's own forward and PackedNLLLoss
  (which draws a stand-in sample of every component), `horizon` = autoprune's loss with every
  multi-size layer computing all patch sizes, `autoprune` = autoprune's loss as shipped.
- sample: 100 paths of a 128-window ETTh1 test batch from the same forecast distribution, by
  uni2ts's `Mixture.sample` and by `draw`.

Medians of `--repeats` rounds, the variants alternating within each round.

    python scripts/moirai_costs.py --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import numpy as np
import torch

import autoprune.models.moirai as moirai
from autoprune.data import load_series
from autoprune.evaluate import Setting
from autoprune.models import load_adapter


def ms(run, times: int = 5) -> float:
    run()  # warm
    start = time.perf_counter()
    for _ in range(times):
        run()
    return (time.perf_counter() - start) / times * 1000


def uni2ts_loss(adapter, model, past, future, patch_size):
    """The module's own forward and uni2ts's PackedNLLLoss of every token, draws included."""
    packed, patch, _ = adapter._pack(model, past, future.shape[1], patch_size, future)
    target, observed, sample_id, time_id, variate_id, pred_mask = packed
    distr = model(target, observed, sample_id, time_id, variate_id, pred_mask, patch)
    return moirai._uni2ts()[2]()(
        pred=distr,
        target=target,
        prediction_mask=pred_mask,
        observed_mask=observed,
        sample_id=sample_id,
        variate_id=variate_id,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    adapter = load_adapter("moirai-tiny")
    series = load_series("etth1")
    setting = Setting.for_series(series, adapter)
    batch = series.train_batch(
        np.random.default_rng(0), 32, setting.context_length, setting.horizon
    )
    past, future = torch.as_tensor(batch.past), torch.as_tensor(batch.future)
    shipped = moirai.one_patch_size

    def every_size(module, size):
        return contextlib.nullcontext()

    def step(loss_fn, model, sizes=shipped):
        def run():
            moirai.one_patch_size = sizes
            try:
                loss_fn(adapter, model, past, future, setting.patch_size).backward()
            finally:
                moirai.one_patch_size = shipped

        return run

    def ours(adapter, model, past, future, patch_size):
        return adapter.loss(model, past, future, patch_size)

    steps = {}
    for keep in ((4,), (2, 3, 5, 7), tuple(range(12))):
        model = adapter.prune(keep)
        model.train()
        variants = {
            "uni2ts": step(uni2ts_loss, model),
            "horizon": step(ours, model, every_size),
            "autoprune": step(ours, model),
        }
        rounds = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                rounds[name].append(ms(run))
        label = f"{len(keep)} layer{'s' * (len(keep) > 1)}"
        steps[label] = {name: round(statistics.median(v), 1) for name, v in rounds.items()}

    windows = series.eval_windows("test", setting.context_length, setting.horizon, 128)
    with torch.no_grad():
        distr = adapter.forward(
            adapter.model, torch.as_tensor(windows.past), setting.horizon, setting.patch_size
        )
        shape = torch.Size((100,))
        rounds = {"uni2ts": [], "autoprune": []}
        for _ in range(args.repeats):
            rounds["uni2ts"].append(ms(lambda: distr.sample(shape), 3))
            rounds["autoprune"].append(ms(lambda: moirai.draw(distr, shape), 3))
    sample = {n: round(statistics.median(v), 1) for n, v in rounds.items()}
    print(
        json.dumps(
            {
                "model": "moirai-tiny",
                "dataset": "etth1",
                "threads": torch.get_num_threads(),
                "step_ms": steps,
                "sample_100_paths_of_128_windows_ms": sample,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
