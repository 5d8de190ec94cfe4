"""Evaluate a model on one split of a series: sample forecasts, then GluonTS-style metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
