"""Model aliases -> (family adapter, source), in the style of timm's `create_model`.

`load_adapter` accepts an alias, a hub id or a local directory; all three end in the same
`Adapter.load(source)` code path. Family modules are imported lazily so that listing models or
reading a study never pays for importing uni2ts.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from autoprune.errors import ModelLoadError, UnknownNameError
from autoprune.models._base import (
    Adapter,
    KeepSet,
    ModelEntry,
    install_command,
    resolve_directory,
    tiny_checkpoint_dir,
    unique_params,
    weights_sha256,
)
from autoprune.registry import Registry


@dataclass(frozen=True)
class Family:
    """A model family: its adapter, the autoprune extra that installs its own library, and the
    library class that loads a pruned checkpoint (the model card's "how to load")."""

    name: str
    adapter: str  # "module:Class"; the module imports the family's library lazily
    library: str  # the published package whose classes load, prune and save it
    extra: str | None  # what installs `library` (see _base.install_command); None: core
    loader: str  # "module:Class" whose from_pretrained(DIR) loads a checkpoint autoprune wrote


FAMILIES: Registry[Family] = Registry("model family")
for _family in (
    Family(
        "moirai",
        "autoprune.models.moirai:MoiraiAdapter",
        "uni2ts",
        None,
        "uni2ts.model.moirai:MoiraiModule",
    ),
    Family(
        "moirai-moe",
        "autoprune.models.moirai2:MoiraiMoEAdapter",
        "uni2ts.model.moirai_moe",
        "uni2ts2",
        "uni2ts.model.moirai_moe:MoiraiMoEModule",
    ),
    Family(
        "moirai-2",
        "autoprune.models.moirai2:Moirai2Adapter",
        "uni2ts.model.moirai2",
        "uni2ts2",
        "uni2ts.model.moirai2:Moirai2Module",
    ),
    Family(
        "moment",
        "autoprune.models.moment:MomentAdapter",
        "momentfm",
        "moment",
        "momentfm:MOMENTPipeline",
    ),
    Family(
        "chronos-bolt",
        "autoprune.models.chronos:ChronosBoltAdapter",
        "chronos",
        "chronos",
        "chronos.chronos_bolt:ChronosBoltModelForForecasting",
    ),
    Family(
        "chronos-2",
        "autoprune.models.chronos:Chronos2Adapter",
        "chronos",
        "chronos",
        "chronos.chronos2:Chronos2Model",
    ),
    Family(
        "gpt4ts",
        "autoprune.models.gpt4ts:GPT4TSAdapter",
        "transformers",
        "gpt4ts",
        "transformers:GPT2Model",  # the backbone; autoprune loads the whole forecaster
    ),
    Family(
        "timesfm",
        "autoprune.models.timesfm:TimesFMAdapter",
        "transformers",
        "timesfm",
        "transformers:TimesFm2_5ModelForPrediction",
    ),
):
    FAMILIES.register(_family.name, _family)

# Families users ask for that autoprune does not prune yet, and why (shown by `list models`).
_REMOTE_CODE_ONLY = (
    "its model code is published only as hub remote code (trust_remote_code), which autoprune "
    "never runs; no PyPI package or transformers release (checked: transformers 5.24) provides it"
)
UNSUPPORTED: dict[str, str] = {
    "timer": f"Timer / Timer-XL (thuml): {_REMOTE_CODE_ONLY}",
    "sundial": f"Sundial (thuml): {_REMOTE_CODE_ONLY}",
    "time-moe": f"Time-MoE (Maple728): {_REMOTE_CODE_ONLY}",
}


def _family_module(family: Family):
    return importlib.import_module(family.adapter.partition(":")[0])


# every alias of every family, from the family modules' ALIASES (cheap: libraries load lazily)
MODELS: dict[str, ModelEntry] = {
    entry.alias: entry
    for module in dict.fromkeys(_family_module(f) for f in FAMILIES.values())
    for entry in module.ALIASES
}


def adapter_class(family: str) -> type[Adapter]:
    family_ = FAMILIES[family]
    return getattr(_family_module(family_), family_.adapter.partition(":")[2])


def _family_of_directory(directory: Path) -> str:
    try:
        config = json.loads((directory / "config.json").read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"model directory {str(directory)!r} has no config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{directory / 'config.json'} is not valid JSON ({exc})") from None
    if isinstance(config, dict):
        for family in FAMILIES:
            if adapter_class(family).recognizes(config):
                return family
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
        family = _family_of_directory(resolve_directory(model))  # a hub download is a directory
        return adapter_class(family).load(model)
    raise UnknownNameError(
        f"unknown model {model!r}: not an alias ({', '.join(MODELS)}), not an existing "
        "directory, not a hub id; see `autoprune list models`"
    )


def availability(entry: ModelEntry) -> str:
    """Whether the family's library is installed, then where the weights are: shipped, in the
    local hub cache, or still to download."""
    family = FAMILIES[entry.family]
    if family.extra and importlib.util.find_spec(family.library) is None:
        return f"needs: {install_command(family.extra)}"
    if Path(entry.source).is_dir():
        return "shipped"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.source, "model.safetensors")
    return "cached" if isinstance(cached, str) else "download on first use"


__all__ = [
    "FAMILIES",
    "MODELS",
    "UNSUPPORTED",
    "Adapter",
    "Family",
    "KeepSet",
    "ModelEntry",
    "availability",
    "load_adapter",
    "tiny_checkpoint_dir",
    "unique_params",
    "weights_sha256",
]
