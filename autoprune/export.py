"""Write pruned checkpoints the model family's own library loads, atomically.

A checkpoint directory holds what the family saves (for Moirai: `config.json` and
`model.safetensors`, loadable with `MoiraiModule.from_pretrained(DIR)`) plus `autoprune.json`:
the keep set, where it came from, the forecast setting, and its validation and test metrics.
The directory is built under a temporary name and renamed into place, so a crash never leaves a
half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from torch import nn

from autoprune.errors import AutoPruneError
from autoprune.models import Adapter

METADATA = "autoprune.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers see the old or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename, below
        "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _swap_into_place(built: Path, directory: Path) -> None:
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        directory.rename(old)
        built.rename(directory)
        shutil.rmtree(old)
    else:
        built.rename(directory)


def check_out(path: Path) -> None:
    """`--out` can be made a folder: neither it nor a folder above it is a file."""
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise AutoPruneError(
                    f"--out {str(path)!r} cannot be a folder: {str(place)!r} is a file; "
                    "choose another --out"
                )
            return


def check_destination(directory: Path) -> None:
    """Only a new or empty directory, or an earlier autoprune checkpoint, may be replaced."""
    check_out(directory)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / METADATA).exists():
        raise AutoPruneError(
            f"--out {str(directory)!r} is a non-empty directory that is not an autoprune "
            "checkpoint; refusing to replace it - choose a new or empty directory"
        )


def write_checkpoint(adapter: Adapter, model: nn.Module, directory: Path, metadata: dict) -> Path:
    directory = Path(directory)
    check_destination(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        adapter.save(model, built)
        (built / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        _swap_into_place(built, directory)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return directory


def copy_checkpoint(source: Path, directory: Path) -> Path:
    """Copy an existing checkpoint directory into place, atomically."""
    directory = Path(directory)
    check_destination(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        shutil.copytree(source, built, dirs_exist_ok=True)
        _swap_into_place(built, directory)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return directory


def read_metadata(directory: Path) -> dict | None:
    path = Path(directory) / METADATA
    return json.loads(path.read_text()) if path.is_file() else None
