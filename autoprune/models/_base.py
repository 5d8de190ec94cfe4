"""The adapter contract: everything the engine needs from a model family, and nothing more.

An adapter wraps one loaded model (the reference, never mutated) and knows how to cut layers out
of it, train and forecast with any model cut from it, and save such a model so that the family's
own library loads it again. Windows are plain tensors on the raw scale: `past` (B, context) and
`future` (B, horizon); families do their own scaling, as in zero-shot use.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from autoprune.errors import AutoPruneError

KeepSet = tuple[int, ...]


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

    @abstractmethod
    def distribution(self, hidden: torch.Tensor):
        """The predictive distribution of the horizon, from the stack's last hidden state."""

    @abstractmethod
    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean forecast (B, horizon) and the negative log-likelihood of `future` per window
        (B,), averaged over the horizon, from one evaluation of the head."""


class Adapter(ABC):
    family: ClassVar[str]

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

    def forward(self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int):
        """One inference forward pass without sampling (what latency measures); returns the
        predictive distribution of the horizon."""
        staged = self.staged(model, past, horizon, patch_size)
        hidden = staged.embed()
        for layer in self.layers(model):
            hidden = staged.apply(layer, hidden)
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

    @property
    def num_layers(self) -> int:
        return len(self.layers(self.model))

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
