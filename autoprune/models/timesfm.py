"""TimesFM 2.5 (Google), through its `transformers` port: the decoder stack's layers are the layers.

The port, not the `timesfm` package, because its depth is `config.num_hidden_layers`, so a pruned
model saves and reloads with `save_pretrained` / `from_pretrained` (README, "Model families").
The port forecasts one output patch (`config.horizon_length`, 128 steps published) and has no
autoregressive decoding, so a longer horizon is refused. Forecasts are its quantile channels read
as paths; re-alignment uses its loss with each quantile channel on its own level (`loss`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autoprune.errors import AutoPruneError, ModelLoadError
from autoprune.models._base import (
    WEIGHTS,
    Adapter,
    ModelEntry,
    Staged,
    check_checkpoint,
    quantiles_to_paths,
    require,
    resolve_directory,
)

EXTRA = "timesfm"

# The published architecture, as transformers' conversion script
# (models/timesfm2_5/convert_timesfm2_5_original_to_hf.py) builds the config of
# google/timesfm-2.5-200m-transformers; every other value is TimesFm2_5Config's default.
PUBLISHED_CONFIG = dict(
    patch_length=32,
    context_length=16384,
    horizon_length=128,
    num_hidden_layers=20,
    hidden_size=1280,
    intermediate_size=1280,
    head_dim=80,
    num_attention_heads=16,
    output_quantile_len=1024,
    decode_index=5,
    use_bias=False,
    activation="swish",
    quantiles=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    max_position_embeddings=16384,
)

# The hub checkpoint names its MLP weights ff0/ff1; transformers >= 5 maps them to the port's
# fc1/fc2 on load and back on save, so autoprune's checkpoints keep the published layout.
ALIASES = (
    ModelEntry(
        "timesfm-2.5-200m",
        "timesfm",
        "google/timesfm-2.5-200m-transformers",
        "TimesFM 2.5 200M (Google), transformers port",
        20,
        231_289_280,
        dict(hidden_size=1280, num_hidden_layers=20, patch_length=32, horizon_length=128),
    ),
)


def _port():
    """The port's prediction class, imported lazily: transformers takes seconds to import."""
    transformers = require("transformers", EXTRA)
    model_class = getattr(transformers, "TimesFm2_5ModelForPrediction", None)
    if model_class is None:
        raise ModelLoadError(
            f"transformers {transformers.__version__} has no TimesFm2_5ModelForPrediction; "
            f"upgrade it with: pip install -U 'autoprune[{EXTRA}]'"
        )
    return model_class


def _quiet():
    """transformers draws progress bars on stderr while loading and saving weights."""
    return contextlib.redirect_stderr(io.StringIO())


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


@dataclass(frozen=True)
class QuantileForecast:
    """What the port predicts for the horizon."""

    point: torch.Tensor  # (B, horizon), raw scale: the port's mean_predictions (the median)
    quantiles: torch.Tensor  # (B, len(levels), horizon), raw scale
    levels: tuple[float, ...]
    normalised: torch.Tensor  # (B, horizon, 1 + len(levels)): every channel, normalised scale


class TimesFMAdapter(Adapter):
    family = "timesfm"
    _attention_sink: list[torch.Tensor] | None = None

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        return config.get("model_type") == "timesfm2_5"

    @classmethod
    def load(cls, source: str | Path) -> TimesFMAdapter:
        directory = resolve_directory(source)
        check_checkpoint(
            directory, hint="save the model with TimesFm2_5ModelForPrediction.save_pretrained"
        )
        model_class = _port()
        try:
            with _quiet():
                model, info = model_class.from_pretrained(
                    str(directory),
                    dtype=torch.float32,
                    use_safetensors=True,
                    output_loading_info=True,
                )
        except (OSError, RuntimeError, TypeError, ValueError, KeyError) as exc:
            reason = (
                "its weight shapes differ from the ones config.json describes"
                if "mismatched_sizes" in str(exc)
                else _first_line(exc)
            )
            raise ModelLoadError(
                f"model directory {str(directory)!r} does not load as a TimesFM 2.5 model: "
                f"{reason} (config.json and {WEIGHTS} must come from the same model)"
            ) from None
        # from_pretrained fills missing weights with random ones and only logs it: refuse instead
        wrong = {
            kind: sorted(info[kind])
            for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
            if info.get(kind)
        }
        if wrong:
            kind, keys = next(iter(wrong.items()))
            raise ModelLoadError(
                f"model directory {str(directory)!r} does not match its config.json "
                f"({kind.replace('_', ' ')}: {', '.join(map(str, keys[:3]))}"
                f"{', ...' if len(keys) > 3 else ''}); config.json and {WEIGHTS} must come "
                "from the same model"
            )
        return cls(model, str(source))

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return model.model.layers

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        return (self.model.config.patch_length,)

    def prune(self, keep: Sequence[int]) -> nn.Module:
        keep = self.check_keep(keep)
        layers = self.layers(self.model)
        # dropped layers map to None in deepcopy's memo, so they are never copied
        memo = {id(layer): None for i, layer in enumerate(layers) if i not in keep}
        pruned = copy.deepcopy(self.model, memo)
        kept = [pruned.model.layers[i] for i in keep]
        for index, layer in enumerate(kept):
            layer.self_attn.layer_idx = index  # the port's cache slot of the layer
        pruned.model.layers = nn.ModuleList(kept)
        # one config object is shared by the model, its decoder and every attention module
        pruned.config.num_hidden_layers = len(keep)
        return pruned

    def save(self, model: nn.Module, directory: str | Path) -> None:
        depth = len(self.layers(model))
        if model.config.num_hidden_layers != depth:
            raise ModelLoadError(
                f"model config says {model.config.num_hidden_layers} layers but the model has "
                f"{depth}; prune it with the adapter's prune()"
            )
        with _quiet():
            model.save_pretrained(str(directory))

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> TimesFMStaged:
        return TimesFMStaged(model, past, horizon, self._attention_sink)

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """The port's default (SDPA) attention never materialises its probabilities: forward
        passes started inside the block run the port's own eager attention instead, and each
        layer's probabilities (2B with the negated copies, heads, patches, patches) go to `sink`."""
        self._attention_sink = sink
        try:
            yield
        finally:
            self._attention_sink = None

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """The port's loss (MSE of the point channel plus the quantile loss, on its normalised
        scale) with each quantile channel paired with its own level. The port's own pairs them
        wrongly: it drops `decode_index` from the channels [mean, q0.1, ..., q0.9] and zips the
        nine left with the nine levels, so the mean is trained as q0.1 and q0.1..q0.4 as
        q0.2..q0.5 (a test checks this against the port); re-aligning with it would drag the
        lower quantiles up."""
        staged, hidden = self.through(model, past, future.shape[1], patch_size)
        return staged.mean_and_nll(hidden, future)[1].mean()

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """Deterministic paths that read back the predicted quantiles (`seed` is not needed)."""
        predicted = self.forward(model, past, horizon, patch_size)
        return quantiles_to_paths(predicted.quantiles, predicted.levels, num_samples)


class _Entrance(nn.Module):
    """Stands in for the layer stack while the port embeds a batch: keeps what the port hands
    every layer besides the hidden state (rotary embeddings, causal mask, positions) and returns
    the embedding unchanged. So the embedding is the port's own code, not a copy of it."""

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> torch.Tensor:
        self.kwargs = kwargs
        return hidden_states


@contextlib.contextmanager
def _eager_attention(config, when: bool) -> Iterator[None]:
    """The port's eager attention for the block: it builds its causal mask and runs its
    attention by `config._attn_implementation`, and only the eager path returns probabilities."""
    previous = config._attn_implementation
    if when:
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = previous


def _flip_channels(x: torch.Tensor) -> torch.Tensor:
    """The negated series' quantile channels in reverse order (its q0.1 is our q0.9); the mean
    channel stays where it is."""
    return torch.cat([x[..., :1], x[..., 1:].flip(-1)], dim=-1)


def pinball_per_window(
    normalised: torch.Tensor, target: torch.Tensor, levels: Sequence[float], point_channel: int
) -> torch.Tensor:
    """MSE of the point channel plus the mean pinball loss of the other quantile channels, each
    at its own level; (B, H, 1 + Q) forecast and (B, H) target -> (B,)."""
    mse = (normalised[..., point_channel] - target).pow(2).mean(dim=1)
    terms = []
    for channel, level in enumerate(levels, start=1):
        if channel != point_channel:
            error = target - normalised[..., channel]
            terms.append(torch.maximum((level - 1) * error, level * error).mean(dim=1))
    return mse + torch.stack(terms).mean(dim=0) if terms else mse


class TimesFMStaged(Staged):
    """TimesFm2_5ModelForPrediction.forward cut at layer boundaries, through the port's own code:
    `_preprocess` pads the context to whole patches, the series is normalised by its mean and
    standard deviation, the port embeds it (`_Entrance`), each kept layer runs with the rotary
    embeddings and causal mask the port made, and the output projections are applied to the last
    patch only, the one the port reads its forecast from. With `force_flip_invariance` the
    negated series runs in the same batch and the two forecasts are averaged, as the port does."""

    def __init__(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        attention_sink: list[torch.Tensor] | None = None,
    ) -> None:
        config = model.config
        if horizon > config.horizon_length:
            raise AutoPruneError(
                f"--horizon {horizon} is longer than this TimesFM model forecasts in one pass "
                f"({config.horizon_length} steps): its transformers port has no autoregressive "
                f"decoding; use --horizon {config.horizon_length} or less"
            )
        self.model, self.config, self.horizon = model, config, horizon
        self.attention_sink = attention_sink
        patch = config.patch_length
        length = min(math.ceil(past.shape[1] / patch) * patch, config.context_length)
        inputs = past[:, -length:]
        self.positive = inputs.min() >= 0  # over the whole batch, as the port decides it
        series, padding = model._preprocess(list(inputs), context_len=length)
        self.loc = series.mean(dim=1, keepdim=True)
        self.scale = series.std(dim=1, keepdim=True)
        normalised = model.model._revin(series, self.loc, self.scale)
        self.flip = bool(config.force_flip_invariance)
        if self.flip:
            normalised = torch.cat([normalised, -normalised])
            padding = torch.cat([padding, padding])
        self.normalised_input, self.padding = normalised, padding

    def embed(self) -> torch.Tensor:
        entrance = _Entrance()
        decoder = copy.copy(self.model.model)  # shares every weight; only its layer list differs
        decoder._modules = {**decoder._modules, "layers": nn.ModuleList([entrance])}
        with _eager_attention(self.config, self.attention_sink is not None):
            out = decoder(past_values=self.normalised_input, past_values_padding=self.padding)
        self.layer_kwargs = entrance.kwargs
        self.patch_loc, self.patch_scale = out.context_mu[:, -1], out.context_sigma[:, -1]
        return out.last_hidden_state

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.attention_sink is None:
            return layer(hidden, **self.layer_kwargs)
        sink = self.attention_sink
        hook = layer.self_attn.register_forward_hook(lambda m, a, out: sink.append(out[1].detach()))
        try:
            with _eager_attention(layer.self_attn.config, True):
                return layer(hidden, **self.layer_kwargs)
        finally:
            hook.remove()

    def distribution(self, hidden: torch.Tensor) -> QuantileForecast:
        model, config = self.model, self.config
        channels = len(config.quantiles) + 1
        last = hidden[:, -1]
        revin = model.model._revin

        def project(head: nn.Module, length: int) -> torch.Tensor:
            out = revin(head(last), self.patch_loc, self.patch_scale, reverse=True)
            return out.view(len(last), length, channels)

        point = project(model.output_projection_point, config.horizon_length)
        spread = project(model.output_projection_quantiles, config.output_quantile_len)
        if self.flip:
            half = len(last) // 2
            point = (point[:half] - _flip_channels(point[half:])) / 2
            spread = (spread[:half] - _flip_channels(spread[half:])) / 2
        median = min(config.decode_index, channels - 1)
        if config.use_continuous_quantile_head:
            # quantiles from the continuous head, re-centred on the point head's median
            reach = min(config.horizon_length, spread.shape[1])
            centred = (
                spread[:, :reach] - spread[:, :reach, median : median + 1]
                + point[:, :reach, median : median + 1]
            )  # fmt: skip
            replace = torch.tensor(
                [channel not in (0, median) for channel in range(channels)], device=point.device
            )
            point = torch.cat(
                [torch.where(replace, centred, point[:, :reach]), point[:, reach:]], dim=1
            )
        normalised = point[:, : self.horizon]
        raw = revin(normalised, self.loc, self.scale, reverse=True)
        if config.infer_is_positive:
            raw = torch.where(self.positive, raw.clamp_min(0), raw)
        return QuantileForecast(
            point=raw[..., median],
            quantiles=raw[..., 1:].transpose(1, 2),
            levels=tuple(config.quantiles),
            normalised=normalised,
        )

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        forecast = self.distribution(hidden)
        target = self.model.model._revin(future, self.loc, self.scale)
        median = min(self.config.decode_index, len(self.config.quantiles))
        loss = pinball_per_window(forecast.normalised, target, forecast.levels, median)
        return forecast.point, loss
