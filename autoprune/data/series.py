"""A univariate target series with its train/val/test split, and the windows cut from it.

Windows follow the LTSF convention: the first forecast of the val and test splits starts at the
split's first row, while its context reaches back into the previous split. Re-alignment draws
random windows whose context and horizon both lie in the train split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from gluonts.time_feature import get_seasonality

from autoprune.data.registry import DatasetSpec, dataset_path, get_spec
from autoprune.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_CSV_SPLIT = (0.7, 0.1, 0.2)


@dataclass(frozen=True)
class Windows:
    """Aligned forecast windows: `past` (N, context) and `future` (N, horizon), raw scale."""

    past: np.ndarray
    future: np.ndarray

    def __len__(self) -> int:
        return len(self.past)


@dataclass(frozen=True)
class Series:
    name: str
    values: np.ndarray
    freq: str
    borders: dict[str, tuple[int, int]]
    context_length: int
    horizon: int
    patch_size: int

    @property
    def seasonality(self) -> int:
        """GluonTS's seasonal period for this frequency (24 for hourly, 96 for 15-minute)."""
        return get_seasonality(self.freq)

    @property
    def train_scale(self) -> tuple[float, float]:
        """Mean and std of the train rows: the LTSF standard scaler used for MSE and MAE."""
        start, end = self.borders["train"]
        train = self.values[start:end]
        return float(train.mean()), float(train.std()) or 1.0

    def check_fits(self, context_length: int, horizon: int) -> None:
        train_rows = self.borders["train"][1] - self.borders["train"][0]
        if train_rows < context_length + horizon:
            raise DataError(
                f"dataset {self.name!r} has {train_rows} train rows, fewer than context + horizon "
                f"= {context_length} + {horizon}; use a shorter --context-length/--horizon or a "
                "longer series"
            )
        for split in ("val", "test"):
            start, end = self.borders[split]
            if end - start < horizon:
                raise DataError(
                    f"dataset {self.name!r} has {end - start} {split} rows, fewer than the horizon "
                    f"{horizon}; use a shorter --horizon or a different --split"
                )

    def eval_windows(
        self, split: str, context_length: int, horizon: int, max_windows: int | None = None
    ) -> Windows:
        """Rolling windows over a split; when capped, evenly spaced so the whole split counts."""
        start, end = self.borders[split]
        first = max(start, context_length)
        starts = np.arange(first, end - horizon + 1)
        if max_windows is not None and len(starts) > max_windows:
            starts = starts[np.linspace(0, len(starts) - 1, max_windows).round().astype(int)]
        past = np.stack([self.values[s - context_length : s] for s in starts])
        future = np.stack([self.values[s : s + horizon] for s in starts])
        return Windows(past.astype(np.float32), future.astype(np.float32))

    def train_batch(
        self, rng: np.random.Generator, batch_size: int, context_length: int, horizon: int
    ) -> Windows:
        start, end = self.borders["train"]
        starts = rng.integers(start + context_length, end - horizon + 1, size=batch_size)
        past = np.stack([self.values[s - context_length : s] for s in starts])
        future = np.stack([self.values[s : s + horizon] for s in starts])
        return Windows(past.astype(np.float32), future.astype(np.float32))


def _parse_split(split: str | tuple[float, float, float] | None) -> tuple[float, float, float]:
    if split is None:
        return DEFAULT_CSV_SPLIT
    if isinstance(split, tuple):
        return split
    try:
        parts = tuple(float(p) for p in split.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        raise DataError(
            f"--split {split!r} is not three finite non-negative numbers; give fractions like "
            "0.7,0.1,0.2 or row counts like 8640,2880,2880"
        )
    return parts  # type: ignore[return-value]


def _borders(n: int, split: tuple[float, float, float], name: str) -> dict[str, tuple[int, int]]:
    if all(p <= 1 for p in split):
        if abs(sum(split) - 1) > 1e-6:
            raise DataError(f"--split fractions {split} for {name!r} must add up to 1")
        n_train, n_test = int(split[0] * n), int(split[2] * n)
        n_val = n - n_train - n_test
    else:
        n_train, n_val, n_test = (int(p) for p in split)
        if n_train + n_val + n_test > n:
            raise DataError(
                f"--split rows {n_train}+{n_val}+{n_test} exceed the {n} rows of {name!r}"
            )
    return {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n_train + n_val + n_test),
    }


def _read_target(path: Path, target: str) -> tuple[np.ndarray, pd.DataFrame]:
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; give a CSV with a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV ({exc})") from None
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows")
    if target not in frame.columns:
        raise DataError(
            f"{path} has no column {target!r}; columns are {', '.join(map(str, frame.columns))}; "
            "choose one with --target"
        )
    column = frame[target]
    numeric = pd.to_numeric(column, errors="coerce")
    bad = numeric.isna() & column.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path} column {target!r} has non-numeric values, first {column.iloc[row]!r} at data "
            f"row {row}; clean the column or choose another with --target"
        )
    missing = int(numeric.isna().sum())
    if missing > len(numeric) / 2:
        raise DataError(
            f"{path} column {target!r} is mostly missing ({missing} of {len(numeric)} values)"
        )
    if missing:
        row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
        raise DataError(
            f"{path} column {target!r} has {missing} missing values (first at data row {row}); "
            "fill or drop them before searching"
        )
    values = numeric.to_numpy(dtype=np.float64)
    # models forecast in float32: a larger value becomes inf there, and squares of values near
    # float64's limit overflow the train scale, which makes MSE and MAE 0.0
    too_large = ~(np.abs(values) <= np.finfo(np.float32).max)
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        raise DataError(
            f"{path} column {target!r} has the value {values[row]!r} at data row {row}, beyond "
            "what a model can forecast (finite, at most 3.4e38 in size); fix or rescale the column"
        )
    if values.min() == values.max():
        raise DataError(
            f"{path} column {target!r} is constant ({values[0]:g} everywhere): forecast errors "
            "are scaled by how the series varies (MASE, CRPS), so they would be undefined; "
            "choose another --target"
        )
    return values, frame


def _infer_freq(frame: pd.DataFrame, path: Path) -> str:
    for column in ("date", "timestamp", "time", frame.columns[0]):
        if column in frame.columns:
            try:
                stamps = pd.to_datetime(frame[column].head(200), format="mixed")
                freq = pd.infer_freq(stamps)
            except (ValueError, TypeError):
                continue
            if freq:
                return freq
    raise DataError(f"cannot tell the sampling frequency of {path}; give it with --freq (e.g. h)")


def load_series(
    dataset: str,
    target: str | None = None,
    freq: str | None = None,
    split: str | None = None,
) -> Series:
    """A registered dataset by name, or any CSV by path (users bring their own data)."""
    path = Path(dataset)
    if path.suffix.lower() == ".csv" or path.exists():
        if path.is_dir():
            raise DataError(f"--dataset {dataset!r} is a directory; give a CSV file")
        if not path.is_file():
            raise DataError(f"dataset file {dataset!r} does not exist")
        spec: DatasetSpec | None = None
        values, frame = _read_target(path, "OT" if target is None else target)
        freq = freq or _infer_freq(frame, path)
        borders = _borders(len(values), _parse_split(split), path.name)
        name = path.stem
        context_length, horizon, patch_size = _defaults_for(len(values))
    else:
        spec = get_spec(dataset)
        values, _ = _read_target(dataset_path(spec), spec.target if target is None else target)
        freq = freq or spec.freq
        borders = _borders(len(values), _parse_split(split) if split else spec.split, spec.name)
        name = spec.name
        context_length, horizon, patch_size = spec.context_length, spec.horizon, spec.patch_size
    try:
        get_seasonality(freq)
    except (ValueError, KeyError, AttributeError):
        raise DataError(
            f"--freq {freq!r} is not a pandas frequency such as h, 15min, D, W"
        ) from None
    return Series(name, values, freq, borders, context_length, horizon, patch_size)


def _defaults_for(n: int) -> tuple[int, int, int]:
    """Context, horizon and patch size for a CSV the registry does not know."""
    if n >= 4000:
        return 512, 96, 32
    if n >= 1000:
        return 256, 48, 16
    return 104, 24, 16
