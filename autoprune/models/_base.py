"""The adapter contract: everything the engine needs from a model family, and nothing more.

An adapter wraps one loaded model (the reference, never mutated) and knows how to cut layers out
of it, train and forecast with any model cut from it, and save such a model so that the family's
own library loads it again. Windows are plain tensors on the raw scale: `past` (B, context) and
`future` (B, horizon); families do their own scaling, as in zero-shot use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import torch
from torch import nn

from autoprune.errors import AutoPruneError, ModelLoadError

KeepSet = tuple[int, ...]


@dataclass(frozen=True)
class ModelEntry:
    """A model alias, as `autoprune list models` shows it."""

    alias: str
    family: str
    source: str  # hub id or directory
    description: str
    num_layers: int
    params: int  # exact, of the published architecture (tests rebuild it and count)
    shape: dict = field(default_factory=dict)
    license: str | None = None  # SPDX-style id of the weights' licence, where autoprune knows it


def tiny_checkpoint_dir(package: str = "moirai_tiny") -> Path:
    """A checkpoint shipped inside the package."""
    return Path(str(resources.files(f"autoprune.models.{package}")))


WEIGHTS = "model.safetensors"
PICKLES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.ckpt")


def resolve_directory(source: str | Path) -> Path:
    """A local directory as is; a hub id through the local cache first, then the network."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"--model {str(source)!r} is a file; give the checkpoint directory"
            )
        return path
    if str(source).count("/") != 1 or str(source).startswith((".", "/")):
        raise ModelLoadError(
            f"--model {str(source)!r} is neither a known alias, an existing directory, nor a hub "
            "id like Salesforce/moirai-1.1-R-small; see `autoprune list models`"
        )
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors"]  # configs and weights, never pickles or code
    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: try the network below
        pass
    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0"):
        network_error = "HF_HUB_OFFLINE is set"
    else:
        try:
            return Path(snapshot_download(str(source), allow_patterns=patterns))
        except Exception as exc:  # noqa: BLE001 - any hub failure gets the same advice
            network_error = type(exc).__name__
    raise ModelLoadError(
        f"model {str(source)!r} is not in the local Hugging Face cache and the hub cannot be "
        f"reached ({network_error}); on a machine with internet run "
        f"`huggingface-cli download {source} --local-dir DIR`, copy DIR here and pass --model DIR"
    )


def weights_sha256(source: str | Path) -> str:
    """The sha256 of a checkpoint's weights file, what `sha256sum model.safetensors` prints (and
    the hub lists as the file's LFS id): which model a study or a table was made with, whatever
    directory or hub id named it. Two names of one checkpoint (a moved directory, a hub id and
    its download) give one digest; a hub id whose weights were replaced gives another."""
    with open(resolve_directory(source) / WEIGHTS, "rb") as weights:
        return hashlib.file_digest(weights, "sha256").hexdigest()


def check_checkpoint(directory: Path, hint: str, weights: str = WEIGHTS) -> None:
    """A checkpoint directory must hold config.json and readable safetensors weights; pickle
    weights are refused by name, because unpickling can run code."""
    files = set(os.listdir(directory))
    if weights not in files:
        pickles = sorted(files.intersection(PICKLES))
        reason = (
            f"it holds pickle weights ({', '.join(pickles)}), which autoprune never loads "
            "because unpickling can run code; convert them to safetensors first"
            if pickles
            else hint
        )
        raise ModelLoadError(f"model directory {str(directory)!r} has no {weights}: {reason}")
    if "config.json" not in files:
        raise ModelLoadError(f"model directory {str(directory)!r} has no config.json")
    for name in ("config.json", weights):
        _check_inside(directory, name)
    _check_safetensors(directory / weights)


def _check_inside(directory: Path, name: str) -> None:
    """A file of the checkpoint is a file in its directory, or a link into it. Only a Hugging
    Face cache snapshot (`.../snapshots/<revision>/`) links elsewhere: into its `blobs`."""
    path = directory / name
    target = path.resolve()
    allowed = [directory.resolve()]
    if directory.resolve().parent.name == "snapshots":
        allowed.append(directory.resolve().parent.parent / "blobs")
    if path.is_symlink() and not any(target.is_relative_to(root) for root in allowed):
        raise ModelLoadError(
            f"{str(path)!r} is a link to {str(target)!r}, outside the model directory; "
            "copy the file into the directory instead of linking it"
        )
    if not target.is_file():
        raise ModelLoadError(f"{str(path)!r} is not a file; the checkpoint is incomplete")


def _check_safetensors(path: Path) -> None:
    """Weights whose header or length is wrong (a truncated download, another file renamed)
    are refused here, in one line, rather than deep inside the family's loader."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as weights:
            weights.keys()
    except SafetensorError as exc:
        raise ModelLoadError(
            f"{str(path)!r} is not a readable safetensors file ({exc}); it may be truncated - "
            "download or save the checkpoint again"
        ) from None


# How each family's library gets installed, where a plain extra is not enough: one place for
# the error messages and `autoprune list models`.
INSTALL = {
    # momentfm 0.1.4 pins transformers==4.33, huggingface-hub 0.24 and numpy 1.25; its code
    # runs on current ones
    "moment": "pip install 'autoprune[moment]' && pip install --no-deps momentfm==0.1.4",
    # uni2ts 2.0 (Moirai-MoE, Moirai-2) pins torch<2.5; it runs on current torch
    "uni2ts2": "pip install --no-deps uni2ts==2.0.0",
}


def install_command(extra: str) -> str:
    return INSTALL.get(extra, f"pip install 'autoprune[{extra}]'")


def require(module: str, extra: str) -> ModuleType:
    """Import a family's own library, or say what installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            f"this model needs {module!r}, which is not installed ({exc}); "
            f"install it with: {install_command(extra)}"
        ) from None


def unique_params(module: nn.Module) -> int:
    """Parameter count with shared tensors counted once (nn.Module.parameters() already dedups)."""
    return sum(p.numel() for p in module.parameters())


class Staged(ABC):
    """One forecast forward pass cut at layer boundaries: embed -> layer -> ... -> head.

    Importance scores read every layer's input and output from it, and zero-shot screening
    shares the forward pass of keep sets with a common prefix of layers.
    """

    @abstractmethod
    def embed(self) -> torch.Tensor:
        """The hidden state entering the first layer."""

    @abstractmethod
    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """One layer of the stack."""

    def through(self, layers: Sequence[nn.Module]) -> torch.Tensor:
        """Embed, then apply `layers` in turn: the stack's last hidden state."""
        hidden = self.embed()
        for layer in layers:
            hidden = self.apply(layer, hidden)
        return hidden

    @abstractmethod
    def distribution(self, hidden: torch.Tensor):
        """The predictive distribution of the horizon, from the stack's last hidden state."""

    @abstractmethod
    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (or point) forecast (B, steps) and the family's own per-window loss (B,) of
        `future`, averaged over those steps, from one evaluation of the head. `steps` is the
        horizon, except for autoregressive families, whose one pass covers its first steps.
        The loss is the negative log-likelihood for distribution heads (Moirai), the quantile
        loss for quantile heads, the squared error of the scaled series for point forecasters.
        Zero-shot screening ranks keep sets by it, so lower must mean better."""


def quantiles_to_paths(
    quantiles: torch.Tensor, levels: Sequence[float], num_samples: int
) -> torch.Tensor:
    """Quantile forecasts (B, Q, H) at increasing `levels` -> (B, num_samples, H) paths that read
    back the same quantiles: the quantile function interpolated linearly at the mid-levels
    (k + 0.5) / num_samples, held flat beyond the outermost levels the model predicts.
    Deterministic, so a quantile head needs no seed."""
    levels_t = torch.as_tensor(levels, dtype=quantiles.dtype, device=quantiles.device)
    wanted = torch.arange(num_samples, device=quantiles.device, dtype=quantiles.dtype) + 0.5
    wanted = (wanted / num_samples).clamp(levels_t[0], levels_t[-1])
    upper = torch.searchsorted(levels_t, wanted).clamp(1, len(levels_t) - 1)
    lower = upper - 1
    weight = ((wanted - levels_t[lower]) / (levels_t[upper] - levels_t[lower])).view(1, -1, 1)
    ordered = quantiles.sort(dim=1).values  # a crossing quantile head must not make paths cross
    return ordered[:, lower] + weight * (ordered[:, upper] - ordered[:, lower])


class Adapter(ABC):
    family: ClassVar[str]

    @classmethod
    @abstractmethod
    def recognizes(cls, config: dict) -> bool:
        """Whether a checkpoint's config.json is one of this family's (no heavy imports)."""

    def __init__(self, model: nn.Module, source: str) -> None:
        self.model = model.eval()
        self.source = source

    @classmethod
    @abstractmethod
    def load(cls, source: str | Path) -> Adapter:
        """Load from a hub id or a local directory; a hub download is just a directory."""

    @abstractmethod
    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The main stack whose blocks are the prunable layers, in forward order."""

    @abstractmethod
    def prune(self, keep: Sequence[int]) -> nn.Module:
        """A new model with only the `keep` layers; the loaded model is left untouched."""

    @abstractmethod
    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """Scalar training loss for re-alignment (the family's own pretraining loss)."""

    @abstractmethod
    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """Sample paths (B, num_samples, horizon) on the raw scale, reproducible for a seed."""

    @abstractmethod
    def staged(self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int) -> Staged:
        """The inference forward pass cut at layer boundaries."""

    def through(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> tuple[Staged, torch.Tensor]:
        """The staged pass through every layer of `model`: the pass and its last hidden state."""
        staged = self.staged(model, past, horizon, patch_size)
        return staged, staged.through(self.layers(model))

    def forward(self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int):
        """One inference forward pass without sampling (what latency measures); returns the
        predictive distribution of the horizon."""
        staged, hidden = self.through(model, past, horizon, patch_size)
        return staged.distribution(hidden)

    @abstractmethod
    def save(self, model: nn.Module, directory: str | Path) -> None:
        """Write a checkpoint the family's own library reloads, strictly, with the same outputs."""

    @property
    @abstractmethod
    def patch_sizes(self) -> tuple[int, ...]:
        """Patch sizes the model can forecast with."""

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """Within the block, append each layer's attention probabilities to `sink`. Families
        that cannot expose them leave `sink` empty (scores then use representations only)."""
        yield

    def set_windows(self, context_length: int, horizon: int) -> None:  # noqa: B027 - optional
        """Told the window before anything is pruned or trained. Families whose forecasting
        head is tied to a fixed context and horizon (GPT4TS, MOMENT) build a new head for a
        model that has none, or refuse sizes a trained head was not built for."""

    def screen_steps(self, horizon: int) -> int:
        """The steps of a `horizon`-step forecast that the zero-shot screen and the rungs
        score: all of them, unless the model forecasts them in more than one pass."""
        return horizon

    @property
    def num_layers(self) -> int:
        return len(self.layers(self.model))

    def layer_groups(self, model: nn.Module) -> tuple[range, ...]:
        """Consecutive ranges of `layers(model)` whose hidden states form one chain: a layer's
        output enters the next layer of its group. One group of all layers, except where a
        model has stacks of another kind (Chronos-Bolt: its encoder, then its decoder
        blocks), whose first layer does not read the previous group's output. Importance
        scores compare hidden states within a group only."""
        return (range(len(self.layers(model))),)

    @property
    def groups(self) -> tuple[range, ...]:
        """The layer groups of the loaded model, in the keep-set index space."""
        return self.layer_groups(self.model)

    @property
    def always_keep(self) -> tuple[int, ...]:
        """Layers the family's default search space keeps in every keep set (a search-space
        file's `always_keep` overrides it): none, unless no keep set without them has reached
        a true front (Chronos-Bolt)."""
        return ()

    def layer_params(self) -> list[int]:
        return list(self._counts[1])

    @functools.cached_property
    def _counts(self) -> tuple[int, tuple[int, ...]]:
        """Total and per-layer parameter counts of the loaded model, which never changes."""
        layers = tuple(unique_params(layer) for layer in self.layers(self.model))
        return unique_params(self.model), layers

    def params(self, keep: Sequence[int] | None = None) -> int:
        """Exact parameter count of the model pruned to `keep` (all layers when None)."""
        total, per_layer = self._counts
        if keep is None:
            return total
        keep = self.check_keep(keep)
        return total - sum(per_layer) + sum(per_layer[i] for i in keep)

    def check_keep(self, keep: Sequence[int]) -> KeepSet:
        result = tuple(sorted({int(i) for i in keep}))
        if not result:
            raise AutoPruneError("a keep set must keep at least one layer")
        bad = [i for i in result if not 0 <= i < self.num_layers]
        if bad:
            raise AutoPruneError(
                f"layer indices {bad} are out of range for a {self.num_layers}-layer model "
                f"(valid: 0..{self.num_layers - 1})"
            )
        return result

    def pick_patch_size(self, wanted: int) -> int:
        """The dataset's patch size if the model has it, else the nearest one it has."""
        return min(self.patch_sizes, key=lambda p: (abs(p - wanted), p))
