"""Write pruned checkpoints the model family's own library loads, atomically.

A checkpoint directory holds what the family saves (for Moirai: `config.json` and
`model.safetensors`, loadable with `MoiraiModule.from_pretrained(DIR)`) plus `autoprune.json`:
the keep set, where it came from, the forecast setting, and its validation and test metrics
next to the full model's; and `README.md`, its model card (`card.py`).
The directory is built under a temporary name and renamed into place, so a crash never leaves a
half-written checkpoint behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from autoprune.card import CARD, model_card
from autoprune.errors import AutoPruneError
from autoprune.models import Adapter

METADATA = "autoprune.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# `.<name>.<pid>.<random or old>.tmp`
_WRITER = re.compile(r"\.(\d+)\.[^.]+\.tmp$")


def _temporary_prefix(path: Path) -> str:
    """Temporary files and folders carry the writer's pid, so a later run can tell the
    leftovers of a process that died (kill -9, power cut) from those of one still writing."""
    return f".{path.name}.{os.getpid()}."


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a pid in a leftover's name says who wrote it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary files and folders a dead writer left in `folder` (also those of
    versions that named them without a pid)."""
    if not folder.is_dir():
        return
    for pattern in (".*.tmp", ".*.tmp-*", ".*.old-*"):  # the last two: older releases' names
        for leftover in folder.glob(pattern):
            writer = _WRITER.search(leftover.name)
            if writer and process_alive(int(writer.group(1))):
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers see the old or the new.
    The file gets the permissions the umask gives (a temporary file's are 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename, below
        "wb", dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp", delete=False
    )
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, 0o666 & ~_umask())
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _swap_into_place(built: Path, directory: Path) -> None:
    if directory.exists():
        old = directory.with_name(f"{_temporary_prefix(directory)}old.tmp")
        directory.rename(old)
        built.rename(directory)
        shutil.rmtree(old)
    else:
        built.rename(directory)


def atomic_write_figure(path: Path, fig, dpi: int) -> Path:
    """A matplotlib figure as a PNG, written atomically (`atomic_write_bytes`); closes it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


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


@contextlib.contextmanager
def _built(directory: Path) -> Iterator[Path]:
    """A folder to fill, built beside `directory` with the umask's permissions and renamed into
    place; a write the disk refuses names `directory`."""
    check_destination(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(directory.parent)
    prefix = _temporary_prefix(directory)
    built = Path(tempfile.mkdtemp(suffix=".tmp", prefix=prefix, dir=directory.parent))
    try:
        yield built
        os.chmod(built, 0o777 & ~_umask())  # after filling: copytree copies its source's mode
        _swap_into_place(built, directory)
    except BaseException as exc:
        shutil.rmtree(built, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(directory)) from exc
        raise


def write_checkpoint(adapter: Adapter, model: nn.Module, directory: Path, metadata: dict) -> Path:
    """The family's checkpoint, `autoprune.json` and the model card (`README.md`)."""
    directory = Path(directory)
    with _built(directory) as built:
        adapter.save(model, built)
        (built / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        (built / CARD).write_text(model_card(metadata))
    return directory


def copy_checkpoint(source: Path, directory: Path) -> Path:
    """Copy an existing checkpoint directory into place, atomically."""
    directory = Path(directory)
    with _built(directory) as built:
        shutil.copytree(source, built, dirs_exist_ok=True)
    return directory


def read_metadata(directory: Path) -> dict | None:
    path = Path(directory) / METADATA
    return json.loads(path.read_text()) if path.is_file() else None
