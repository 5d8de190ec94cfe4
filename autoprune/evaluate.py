"""Evaluate a model on one split of a series: sample forecasts, then GluonTS-style metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoprune.data import Series, Windows
from autoprune.errors import AutoPruneError
from autoprune.metrics import forecast_metrics, seasonal_naive
from autoprune.models import Adapter

NUM_SAMPLES = 100


@dataclass(frozen=True)
class Setting:
    """How a model is asked to forecast: context, horizon, patch size."""

    context_length: int
    horizon: int
    patch_size: int

    @classmethod
    def for_series(
        cls,
        series: Series,
        adapter: Adapter,
        context_length: int | None = None,
        horizon: int | None = None,
        patch_size: int | None = None,
    ) -> Setting:
        setting = cls(
            context_length or series.context_length,
            horizon or series.horizon,
            patch_size or adapter.pick_patch_size(series.patch_size),
        )
        if setting.patch_size not in adapter.patch_sizes:
            raise AutoPruneError(
                f"--patch-size {setting.patch_size} is not one the model has; "
                f"choose from {', '.join(map(str, adapter.patch_sizes))}"
            )
        if setting.context_length <= 0 or setting.horizon <= 0:
            raise AutoPruneError("--context-length and --horizon must be positive")
        series.check_fits(setting.context_length, setting.horizon)
        adapter.set_windows(setting.context_length, setting.horizon)
        return setting


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda") or device != str(resolved):
        raise AutoPruneError(
            f"--device {device!r} is not one of auto, cpu, cuda, cuda:N (N a GPU number)"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise AutoPruneError(
            f"--device {device} was asked for but no CUDA device is visible; use cpu"
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise AutoPruneError(
            f"--device {device} names GPU {resolved.index}, but this machine has "
            f"{torch.cuda.device_count()} (cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    return resolved


@torch.no_grad()
def sample_forecasts(
    adapter: Adapter,
    model: nn.Module,
    windows: Windows,
    setting: Setting,
    num_samples: int = NUM_SAMPLES,
    batch_size: int = 128,
    seed: int = 0,
) -> np.ndarray:
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(windows), batch_size):
        past = torch.as_tensor(windows.past[start : start + batch_size], device=device)
        samples = adapter.forecast(
            model, past, setting.horizon, setting.patch_size, num_samples, seed=seed + start
        )
        out.append(samples.float().cpu().numpy())
    return np.concatenate(out)


def evaluate(
    adapter: Adapter,
    model: nn.Module,
    series: Series,
    split: str,
    setting: Setting,
    max_windows: int | None = None,
    num_samples: int = NUM_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of `model` on `split`, plus `windows` and `seconds`; deterministic for a seed."""
    start = time.perf_counter()
    windows = series.eval_windows(split, setting.context_length, setting.horizon, max_windows)
    samples = sample_forecasts(adapter, model, windows, setting, num_samples, seed=seed)
    metrics = forecast_metrics(
        windows.past, windows.future, samples, series.seasonality, series.train_scale[1]
    )
    return {**metrics, "windows": len(windows), "seconds": round(time.perf_counter() - start, 3)}


def evaluate_seasonal_naive(
    series: Series, split: str, setting: Setting, max_windows: int | None = None
) -> dict[str, float]:
    windows = series.eval_windows(split, setting.context_length, setting.horizon, max_windows)
    point = seasonal_naive(windows.past, setting.horizon, series.seasonality)[:, None, :]
    metrics = forecast_metrics(
        windows.past, windows.future, point, series.seasonality, series.train_scale[1]
    )
    return {**metrics, "windows": len(windows)}


def evaluate_model(
    model: str,
    dataset: str | None = None,
    options: dict | None = None,
    split: str = "test",
    context_length: int | None = None,
    horizon: int | None = None,
    patch_size: int | None = None,
    num_samples: int | None = None,
    max_windows: int | None = None,
    device: str = "auto",
) -> dict:
    """`autoprune evaluate`: a model (alias, hub id or folder) on a split, next to the seasonal
    naive forecast. An autoprune export's `autoprune.json` supplies what is not given - its
    dataset and CSV options, forecast setting and sample count - so its stored test metrics are
    reproduced."""
    from autoprune.data import load_series
    from autoprune.export import read_metadata
    from autoprune.models import load_adapter

    metadata = (read_metadata(Path(model)) if Path(model).is_dir() else None) or {}
    made = metadata.get("setting", {})
    name = dataset or metadata.get("dataset") or "etth1"
    if "," in name and not dataset:
        raise AutoPruneError(
            f"{model} was selected on several datasets ({name}); evaluate it on one at a "
            f"time with --dataset, e.g. --dataset {name.split(',')[0]} (its autoprune.json "
            "holds the test metrics of each under test.datasets)"
        )
    stored = metadata.get("dataset_options", {}) if not dataset else {}
    given = options or {}
    series = load_series(
        name, **{k: given.get(k) or stored.get(k) for k in ("target", "freq", "split")}
    )
    resolved = resolve_device(device)
    adapter = load_adapter(model)
    adapter.model.to(resolved)
    setting = Setting.for_series(
        series,
        adapter,
        context_length or made.get("context_length"),
        horizon or made.get("horizon"),
        patch_size or made.get("patch_size"),
    )
    num_samples = num_samples or metadata.get("num_samples") or NUM_SAMPLES
    if num_samples < 1:
        raise AutoPruneError(f"--num-samples {num_samples} must be at least 1")
    metrics = evaluate(
        adapter,
        adapter.model,
        series,
        split,
        setting,
        max_windows=max_windows,
        num_samples=num_samples,
    )
    return {
        "model": model,
        "dataset": series.name,
        "split": split,
        "context_length": setting.context_length,
        "horizon": setting.horizon,
        "patch_size": setting.patch_size,
        "num_samples": num_samples,
        "layers": adapter.num_layers,
        "params": adapter.params(),
        "metrics": metrics,
        "seasonal_naive": evaluate_seasonal_naive(series, split, setting, max_windows),
        "seasonality": series.seasonality,
    }
