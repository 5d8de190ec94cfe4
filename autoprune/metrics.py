"""Forecast accuracy metrics, defined and aggregated as GluonTS's Evaluator does.

No metric is in the series' units: `mase` and `crps` are scale-free by definition (computed on
the raw series, as GluonTS does; `crps` is the usual `mean_wQuantileLoss` approximation), `mse`
(mean forecast) and `mae` (median forecast) are on the train-standardised scale of the LTSF
literature, so they compare with published ETT tables. `SCALES` says which, for every report.
"""

from __future__ import annotations

import numpy as np

QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))
METRICS = ("mase", "crps", "mse", "mae")
SCALES = {
    "mase": "scale-free: MAE of the median over the context's mean absolute seasonal difference",
    "crps": "scale-free: GluonTS mean_wQuantileLoss on the raw series (quantile loss over "
    "sum |target|, quantiles 0.1-0.9)",
    "mse": "train-standardised scale (LTSF convention), mean forecast",
    "mae": "train-standardised scale (LTSF convention), median forecast",
}


def accuracy_index(objectives) -> int:
    """Where a study's accuracy objective (the one metric among its objectives) is."""
    return next(i for i, o in enumerate(objectives) if o in METRICS)


def seasonal_error(past: np.ndarray, seasonality: int) -> np.ndarray:
    """Per-window mean |y[t] - y[t-m]| over the context, m = 1 when the context is not longer
    than a season; `past` is (N, context)."""
    m = seasonality if seasonality < past.shape[-1] else 1
    return np.mean(np.abs(past[..., m:] - past[..., :-m]), axis=-1)


def quantile_loss(target: np.ndarray, forecast: np.ndarray, q: float) -> float:
    return float(2 * np.sum(np.abs((forecast - target) * ((target <= forecast) - q))))


def mean_weighted_quantile_loss(
    target: np.ndarray, quantile_forecasts: dict[float, np.ndarray]
) -> float:
    scale = float(np.sum(np.abs(target)))
    losses = [quantile_loss(target, quantile_forecasts[q], q) / scale for q in quantile_forecasts]
    return float(np.mean(losses))


def sample_quantiles(samples: np.ndarray, levels) -> np.ndarray:
    """`np.quantile(samples, levels, axis=1)` (its default, linear method), from one sort of
    the sample axis instead of a partition per level: the same values, bit for bit (the same
    interpolation, a slice with a NaN gives NaN), several times faster on (N, 100, H) samples.
    Returns (len(levels), N, H)."""
    ordered = np.sort(samples, axis=1)
    count = ordered.shape[1]
    virtual = np.asarray(levels, dtype=float) * (count - 1)
    below = np.floor(virtual).astype(int)
    above = np.minimum(below + 1, count - 1)
    gamma = (virtual - below)[None, :, None]
    low, high = ordered[:, below], ordered[:, above]
    step = high - low
    # np.quantile's interpolation: from the nearer end, so a level's value stays within bounds
    values = np.where(gamma >= 0.5, high - step * (1 - gamma), low + step * gamma)
    values[np.broadcast_to(np.isnan(ordered[:, -1:]), values.shape)] = np.nan
    return np.moveaxis(values, 1, 0)


def forecast_metrics(
    past: np.ndarray,
    future: np.ndarray,
    samples: np.ndarray,
    seasonality: int,
    train_std: float,
) -> dict[str, float]:
    """All metrics from sample paths: past (N, C), future (N, H), samples (N, S, H), raw scale;
    `train_std` is the train split's standard deviation (MSE and MAE are divided by it). As
    GluonTS's Evaluator aggregates: `mase` is the mean of the per-window values (one window is
    one GluonTS item), `crps` the weighted quantile loss over all windows averaged over the
    quantiles 0.1..0.9 (`mean_wQuantileLoss`)."""
    quantiles = dict(zip(QUANTILES, sample_quantiles(samples, QUANTILES), strict=True))
    median = quantiles[0.5]
    mean = samples.mean(axis=1)
    per_window_mase = np.mean(np.abs(future - median), axis=-1) / seasonal_error(past, seasonality)
    return {
        "mase": float(np.mean(per_window_mase)),
        "crps": mean_weighted_quantile_loss(future, quantiles),
        "mse": float(np.mean(((future - mean) / train_std) ** 2)),
        "mae": float(np.mean(np.abs(future - median) / train_std)),
    }


def seasonal_naive(past: np.ndarray, horizon: int, seasonality: int) -> np.ndarray:
    """Repeat the last season of the context; the baseline MASE is scaled against."""
    m = seasonality if seasonality < past.shape[-1] else 1
    last = past[:, -m:]
    reps = -(-horizon // m)
    return np.tile(last, (1, reps))[:, :horizon]
