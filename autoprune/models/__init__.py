"""Model aliases -> (family adapter, source), in the style of timm's `create_model`.

`load_adapter` accepts an alias, a hub id or a local directory; all three end in the same
`Adapter.load(source)` code path. Family modules are imported lazily so that listing models or
reading a study never pays for importing uni2ts.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from autoprune.errors import ModelLoadError, UnknownNameError
from autoprune.models._base import Adapter, KeepSet, unique_params

FAMILIES = {"moirai": "autoprune.models.moirai:MoiraiAdapter"}


@dataclass(frozen=True)
class ModelEntry:
    alias: str
    family: str
    source: str
    description: str
    num_layers: int
    shape: dict = field(default_factory=dict)


MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    MODELS[entry.alias] = entry
    return entry


def tiny_checkpoint_dir(package: str = "moirai_tiny") -> Path:
    return Path(str(resources.files(f"autoprune.models.{package}")))


_MOIRAI_SHAPES = {
    "small": dict(d_model=384, num_layers=6),
    "base": dict(d_model=768, num_layers=12),
    "large": dict(d_model=1024, num_layers=24),
}

register_model(
    ModelEntry(
        "moirai-tiny",
        "moirai",
        str(tiny_checkpoint_dir()),
        "autoprune's own 12-layer Moirai, pretrained on synthetic series (shipped)",
        12,
        dict(d_model=128, num_layers=12, patch_sizes=(16, 32, 64)),
    )
)
register_model(
    ModelEntry(
        "moirai-tiny-8",
        "moirai",
        str(tiny_checkpoint_dir("moirai_tiny_8")),
        "8-layer sibling of moirai-tiny, same recipe (shipped; exhaustive benchmark ground truth)",
        8,
        dict(d_model=128, num_layers=8, patch_sizes=(16, 32, 64)),
    )
)
for _size, _shape in _MOIRAI_SHAPES.items():
    register_model(
        ModelEntry(
            f"moirai-{_size}",
            "moirai",
            f"Salesforce/moirai-1.0-R-{_size}",
            f"Moirai 1.0-R {_size} (Salesforce)",
            _shape["num_layers"],
            dict(_shape, patch_sizes=(8, 16, 32, 64, 128)),
        )
    )
    register_model(
        ModelEntry(
            f"moirai-1.1-{_size}",
            "moirai",
            f"Salesforce/moirai-1.1-R-{_size}",
            f"Moirai 1.1-R {_size} (Salesforce)",
            _shape["num_layers"],
            dict(_shape, patch_sizes=(8, 16, 32, 64, 128)),
        )
    )


def adapter_class(family: str) -> type[Adapter]:
    module_name, _, class_name = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def _family_of_directory(directory: Path) -> str:
    try:
        config = json.loads((directory / "config.json").read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"model directory {str(directory)!r} has no config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{directory / 'config.json'} is not valid JSON ({exc})") from None
    if isinstance(config, dict) and {"distr_output", "patch_sizes"} <= set(config):
        return "moirai"
    raise ModelLoadError(
        f"cannot tell which model family {str(directory)!r} holds; supported: {', '.join(FAMILIES)}"
    )


def load_adapter(model: str) -> Adapter:
    """An alias (`moirai-tiny`), a hub id (`Salesforce/moirai-1.1-R-small`) or a directory."""
    entry = MODELS.get(model)
    if entry is not None:
        return adapter_class(entry.family).load(entry.source)
    path = Path(model).expanduser()
    if path.is_dir():
        return adapter_class(_family_of_directory(path)).load(path)
    if "/" in model and not path.exists() and not model.startswith((".", "/", "~")):
        return adapter_class("moirai").load(model)
    raise UnknownNameError(
        f"unknown model {model!r}: not an alias ({', '.join(MODELS)}), not an existing "
        "directory, not a hub id; see `autoprune list models`"
    )


def availability(entry: ModelEntry) -> str:
    """Where the weights are: shipped, in the local hub cache, or still to download."""
    if Path(entry.source).is_dir():
        return "shipped"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.source, "model.safetensors")
    return "cached" if isinstance(cached, str) else "download on first use"


__all__ = [
    "MODELS",
    "Adapter",
    "KeepSet",
    "ModelEntry",
    "availability",
    "load_adapter",
    "register_model",
    "tiny_checkpoint_dir",
    "unique_params",
]
