"""Dataset registry: name -> where the file comes from, its checksum, and how it is split.

A dataset is found, in order, in `$AUTOPRUNE_DATA_DIR`, inside the package (etth1 is bundled so
the default run is offline), in the download cache, and finally fetched from its canonical public
source. Every copy is checked against the registered sha256 before use, so a truncated download
or a silently edited file never reaches a study.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from autoprune.errors import DataError, UnknownNameError

DATA_DIR_ENV = "AUTOPRUNE_DATA_DIR"
CACHE_DIR_ENV = "AUTOPRUNE_CACHE_DIR"

_ETT_COMMIT = "1d16c8f4f943005d613b5bc962e9eeb06058cf07"
_ETT_URL = f"https://raw.githubusercontent.com/zhouhaoyi/ETDataset/{_ETT_COMMIT}/ETT-small/"


@dataclass(frozen=True)
class DatasetSpec:
    """What a registered benchmark is and how the LTSF literature splits it.

    `split` holds either row counts (train, val, test), as the ETT loaders hard-code them, or
    fractions, which follow THUML's 70/10/20 rule (test = last int(0.2 n) rows).
    """

    name: str
    filename: str
    url: str
    sha256: str
    freq: str
    target: str
    split: tuple[float, float, float]
    context_length: int
    horizon: int
    patch_size: int
    licence: str
    bundled: bool = False


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


register_dataset(
    DatasetSpec(
        name="etth1",
        filename="ETTh1.csv",
        url=_ETT_URL + "ETTh1.csv",
        sha256="f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
        freq="h",
        target="OT",
        split=(8640, 2880, 2880),
        context_length=512,
        horizon=96,
        patch_size=32,
        licence="CC BY-ND 4.0",
        bundled=True,
    )
)
register_dataset(
    DatasetSpec(
        name="etth2",
        filename="ETTh2.csv",
        url=_ETT_URL + "ETTh2.csv",
        sha256="a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
        freq="h",
        target="OT",
        split=(8640, 2880, 2880),
        context_length=512,
        horizon=96,
        patch_size=32,
        licence="CC BY-ND 4.0",
    )
)
register_dataset(
    DatasetSpec(
        name="ettm1",
        filename="ETTm1.csv",
        url=_ETT_URL + "ETTm1.csv",
        sha256="6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",
        freq="15min",
        target="OT",
        split=(34560, 11520, 11520),
        context_length=512,
        horizon=96,
        patch_size=32,
        licence="CC BY-ND 4.0",
    )
)
register_dataset(
    DatasetSpec(
        name="exchange-rate",
        filename="exchange_rate.csv",
        url="https://raw.githubusercontent.com/XiongxiaoXu/SST/"
        "54de0639345bfbe5d8c1502581a748f12faa5769/dataset/exchange_rate/exchange_rate.csv",
        sha256="48b4d9d3d508f5104162e85b9a6042e3557fde11aa9f2944eba8c0d0efc89842",
        freq="D",
        target="OT",
        split=(0.7, 0.1, 0.2),
        context_length=512,
        horizon=96,
        patch_size=16,
        licence="none stated (THUML distribution)",
    )
)
register_dataset(
    DatasetSpec(
        name="ili",
        filename="national_illness.csv",
        url="https://raw.githubusercontent.com/thorhojhus/ssl_fts/"
        "ab2d6d956ef5dc022837f6f9ad66a2058c14c557/data/national_illness.csv",
        sha256="93601f64d2566dc796ca4305adad8b8560c2db1a1ff04543c3bd813a7263570a",
        freq="W",
        target="OT",
        split=(0.7, 0.1, 0.2),
        context_length=104,
        horizon=24,
        patch_size=16,
        licence="none stated (THUML distribution)",
    )
)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise UnknownNameError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}, "
            "or give a path to a CSV file"
        ) from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "autoprune" / "data"
    return Path(os.environ.get(CACHE_DIR_ENV) or default)


def _verified(path: Path, spec: DatasetSpec) -> Path:
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise DataError(
            f"{path} does not match the published {spec.name} file (sha256 {actual[:12]}…, "
            f"expected {spec.sha256[:12]}…); delete it or point {DATA_DIR_ENV} at a clean copy"
        )
    return path


def _download(spec: DatasetSpec, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as response:
            payload = response.read()
    except OSError as exc:
        raise DataError(
            f"dataset {spec.name!r} is not on this machine and could not be downloaded from "
            f"{spec.url} ({exc}); put {spec.filename} in a folder and set {DATA_DIR_ENV} to it"
        ) from None
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp.write(payload)
    tmp_path = Path(tmp.name)
    try:
        _verified(tmp_path, spec)
    except DataError:
        tmp_path.unlink()
        raise
    tmp_path.replace(dest)


def dataset_path(spec: DatasetSpec) -> Path:
    """The verified local file for a registered dataset, fetching it on first use."""
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir and (Path(data_dir) / spec.filename).is_file():
        return _verified(Path(data_dir) / spec.filename, spec)
    if spec.bundled:
        bundled = resources.files("autoprune.data.bundled") / spec.filename
        return _verified(Path(str(bundled)), spec)
    cached = cache_dir() / spec.filename
    if not cached.is_file():
        _download(spec, cached)
    return _verified(cached, spec)
