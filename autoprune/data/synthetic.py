"""Synthetic series for pretraining `moirai-tiny`: never the evaluation datasets.

Each series is a random mixture of the structures real series show: a level and a (piecewise)
linear trend; seasonalities at calendar-like and random periods with harmonics (so cycles are not
pure sines), sometimes multiplicative; smooth GP-like components drawn with random Fourier
features of an RBF kernel; an AR(1) or random-walk component; level shifts; Gaussian noise; and
sometimes a positive-only transform, so every component of Moirai's mixture head gets used.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

CALENDAR_PERIODS = (4, 7, 12, 24, 48, 52, 96, 168, 365)


def _seasonal(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    if rng.random() < 0.6:
        period = float(rng.choice(CALENDAR_PERIODS))
    else:
        period = float(np.exp(rng.uniform(np.log(4), np.log(300))))
    harmonics = rng.integers(1, 4)
    phase = rng.uniform(0, 2 * np.pi)
    out = np.zeros_like(t)
    for k in range(1, harmonics + 1):
        out += rng.normal() / k * np.sin(2 * np.pi * k * t / period + k * phase)
    return out


def _smooth(rng: np.random.Generator, t: np.ndarray, features: int = 16) -> np.ndarray:
    length_scale = np.exp(rng.uniform(np.log(8), np.log(400)))
    freqs = rng.normal(0, 1 / length_scale, features)
    phases = rng.uniform(0, 2 * np.pi, features)
    return np.sqrt(2 / features) * np.cos(np.outer(t, freqs) + phases).sum(axis=1)


def _ar(rng: np.random.Generator, n: int) -> np.ndarray:
    phi = 1.0 if rng.random() < 0.3 else rng.uniform(0.5, 0.98)
    out = lfilter([1.0], [1.0, -phi], rng.normal(0, 1, n))
    return out / max(np.std(out), 1e-6)


def synthetic_series(rng: np.random.Generator, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float64) + rng.integers(0, 10_000)
    signal = np.zeros(length)
    for _ in range(rng.integers(0, 4)):
        signal += rng.uniform(0.3, 2.0) * _seasonal(rng, t)
    if rng.random() < 0.5:
        signal += rng.uniform(0.3, 2.0) * _smooth(rng, t)
    if rng.random() < 0.3:
        signal += rng.uniform(0.1, 1.0) * _ar(rng, length)
    slope = rng.normal(0, 1) * rng.choice([0.0, 1e-3, 1e-2])
    trend = slope * (t - t[0])
    if rng.random() < 0.3:
        knot = rng.integers(0, length)
        trend[knot:] += rng.normal(0, 1e-2) * (t[knot:] - t[knot])
    signal += trend
    for _ in range(rng.poisson(0.4)):
        signal[rng.integers(0, length) :] += rng.normal(0, 1.5)
    if rng.random() < 0.3:
        season = _seasonal(rng, t)
        signal *= 1 + 0.3 * season / max(np.abs(season).max(), 1e-6)
    signal += rng.uniform(0.02, 0.5) * rng.normal(0, 1, length)
    if signal.std() < 1e-6:
        signal += rng.normal(0, 1, length)
    scale = np.exp(rng.uniform(np.log(0.1), np.log(100)))
    level = rng.normal(0, 3) * scale
    series = level + scale * signal
    if rng.random() < 0.15:
        series = np.abs(series)
    return series.astype(np.float32)


def synthetic_batch(
    rng: np.random.Generator, batch_size: int, context_length: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """(past, future) windows of independent synthetic series."""
    series = np.stack([synthetic_series(rng, context_length + horizon) for _ in range(batch_size)])
    return series[:, :context_length], series[:, context_length:]
