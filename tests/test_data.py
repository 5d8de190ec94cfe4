import hashlib
from pathlib import Path

import numpy as np
import pytest

from autoprune.data import DATASETS, load_series
from autoprune.data.registry import dataset_path, get_spec
from autoprune.errors import DataError, UnknownNameError
from tests.conftest import SHARED_DATA


def test_etth1_is_bundled_and_split_like_ltsf():
    series = load_series("etth1")
    assert series.borders == {"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}
    assert series.seasonality == 24 and series.freq == "h"
    assert len(series.values) == 17420


def test_every_registered_dataset_has_source_and_checksum():
    for spec in DATASETS.values():
        assert spec.url.startswith("https://") and len(spec.sha256) == 64


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside the checkout")
def test_data_dir_override_is_used_and_verified(monkeypatch):
    monkeypatch.setenv("AUTOPRUNE_DATA_DIR", str(SHARED_DATA))
    for name in ("etth2", "exchange-rate", "ili"):
        path = dataset_path(get_spec(name))
        assert path.parent == SHARED_DATA
        assert hashlib.sha256(path.read_bytes()).hexdigest() == get_spec(name).sha256
    ili = load_series("ili")
    assert ili.borders == {"train": (0, 676), "val": (676, 773), "test": (773, 966)}


def test_corrupt_copy_is_refused(tmp_path, monkeypatch):
    (tmp_path / "ETTh2.csv").write_text("date,OT\n2020-01-01,1\n")
    monkeypatch.setenv("AUTOPRUNE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="does not match"):
        load_series("etth2")


def test_offline_download_failure_names_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPRUNE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", _refuse)
    with pytest.raises(DataError, match="AUTOPRUNE_DATA_DIR"):
        load_series("ettm1")


def _refuse(*args, **kwargs):
    raise OSError("network unreachable")


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(UnknownNameError, match="etth1"):
        load_series("etth9")


def test_csv_by_path(tiny_csv):
    series = load_series(str(tiny_csv))
    assert series.freq.lower() == "h" and series.seasonality == 24
    assert series.borders["train"] == (0, 840)
    windows = series.eval_windows("test", 64, 16)
    assert windows.past.shape[1] == 64 and windows.future.shape[1] == 16
    # the first test window forecasts the first test row from context in the val split
    start = series.borders["test"][0]
    assert np.allclose(windows.future[0], series.values[start : start + 16])


def test_csv_split_as_rows(tiny_csv):
    series = load_series(str(tiny_csv), split="600,200,400")
    assert series.borders == {"train": (0, 600), "val": (600, 800), "test": (800, 1200)}


BAD = {
    "empty": ("", "empty"),
    "no-rows": ("date,OT\n", "no data rows"),
    "no-target": ("date,x\n2020-01-01,1\n", "no column 'OT'"),
    "non-numeric": ("date,OT\n2020-01-01,1\n2020-01-02,abc\n", "non-numeric"),
    "mostly-missing": (
        "date,OT\n" + "".join(f"2020-01-{d:02d},\n" for d in range(1, 20)) + "2020-01-20,1\n",
        "mostly missing",
    ),
    "some-missing": (
        "date,OT\n" + "".join(f"2020-01-{d:02d},{d}\n" for d in range(1, 20)) + "2020-01-20,\n",
        "missing values",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_gets_a_clear_error(tmp_path, case):
    text, message = BAD[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_series(str(path), freq="D")


def test_too_short_for_context_and_horizon(tiny_csv):
    series = load_series(str(tiny_csv))
    with pytest.raises(DataError, match="context"):
        series.check_fits(1000, 96)


def test_missing_csv_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_series(str(tmp_path / "nope.csv"))


def test_bundled_licence_is_shipped():
    bundled = Path(__file__).resolve().parents[1] / "autoprune" / "data" / "bundled"
    assert (bundled / "ETDataset-LICENSE-CC-BY-ND-4.0.txt").is_file()
