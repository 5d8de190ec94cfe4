"""Datasets: the registry of public benchmarks, and series/windows cut from them."""

from autoprune.data.registry import DATASETS, DatasetSpec, dataset_path, get_spec
from autoprune.data.series import SPLITS, Series, Windows, load_series

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetSpec",
    "Series",
    "Windows",
    "dataset_path",
    "get_spec",
    "load_series",
]
