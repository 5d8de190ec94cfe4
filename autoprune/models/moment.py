"""MOMENT (AutonLab, `momentfm` 0.1.4): the T5 encoder blocks of `MOMENTPipeline` are the layers.

Checkpoints, the forecasting head (`init()`), the loss's forward pass and the staged pass's
pieces are momentfm's own. MOMENT reads exactly `seq_len` (512) steps: shorter contexts are
left-padded and masked, longer ones truncated. The published checkpoints have no forecasting
head, so autoprune builds one per horizon from a fixed seed and the re-alignment trains it
(`MomentAdapter`); zero-shot numbers read that untrained head. It is a point forecaster.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import warnings
from collections.abc import Iterator, Sequence
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
    require,
    resolve_directory,
    unique_params,
)

EXTRA = "moment"
HEAD_SEED = 0
DEFAULT_HORIZON = 96  # the forecasting head a reconstruction checkpoint gets at load
FORECASTING = "forecasting"  # momentfm.common.TASKS.FORECASTING

# The published MOMENT-1 configs (huggingface.co/AutonLab/MOMENT-1-{small,base,large}/config.json)
# carry the T5 config of their backbone inline: google/flan-t5-{small,base,large}'s d_model, d_ff,
# num_heads and num_layers (d_kv 64, gated-gelu, vocab 32128, 32 buckets). Counts are of the
# model momentfm builds from them with random weights (tests rebuild the smallest): T5's unused
# token embedding (32128 x d_model, in the published safetensors) included, the sinusoidal
# positional buffer not (a buffer), and the pretrained reconstruction head, not the forecasting
# head autoprune adds.
_T5_SHAPES = {
    "small": (dict(d_model=512, d_ff=1024, num_heads=6, num_layers=8), 35_341_512),
    "base": (dict(d_model=768, d_ff=2048, num_heads=12, num_layers=12), 109_641_608),
    "large": (dict(d_model=1024, d_ff=2816, num_heads=16, num_layers=24), 341_248_520),
}


def published_config(size: str) -> dict:
    """The config.json of AutonLab/MOMENT-1-<size>, as momentfm reads it."""
    shape = _T5_SHAPES[size][0]
    return {
        "task_name": "reconstruction",
        "model_name": "MOMENT",
        "transformer_type": "encoder_only",
        "d_model": None,
        "seq_len": 512,
        "patch_len": 8,
        "patch_stride_len": 8,
        "device": "cpu",
        "transformer_backbone": f"google/flan-t5-{size}",
        "model_kwargs": {},
        "t5_config": {
            **shape,
            "architectures": ["T5ForConditionalGeneration"],
            "d_kv": 64,
            "decoder_start_token_id": 0,
            "dropout_rate": 0.1,
            "eos_token_id": 1,
            "feed_forward_proj": "gated-gelu",
            "initializer_factor": 1.0,
            "is_encoder_decoder": True,
            "layer_norm_epsilon": 1e-6,
            "model_type": "t5",
            "n_positions": 512,
            "num_decoder_layers": shape["num_layers"],
            "output_past": True,
            "pad_token_id": 0,
            "relative_attention_max_distance": 128,
            "relative_attention_num_buckets": 32,
            "tie_word_embeddings": False,
            "use_cache": True,
            "vocab_size": 32128,
        },
    }


ALIASES = tuple(
    ModelEntry(
        f"moment-1-{size}",
        "moment",
        f"AutonLab/MOMENT-1-{size}",
        f"MOMENT-1 {size} (AutonLab); pretrained for reconstruction, its forecasting head is "
        "trained by the re-alignment",
        shape["num_layers"],
        params,
        dict(d_model=shape["d_model"], num_layers=shape["num_layers"], seq_len=512, patch_len=8),
    )
    for size, (shape, params) in _T5_SHAPES.items()
)


def _momentfm():
    """momentfm's model module, imported lazily: it pulls in transformers (seconds)."""
    require("momentfm", EXTRA)
    return require("momentfm.models.moment", EXTRA)


def _t5():
    return require("transformers.models.t5.modeling_t5", EXTRA)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """huggingface_hub prints 'Loading weights from local directory'; momentfm warns that a
    forecasting head is not pretrained - which autoprune knows, and says in its docstring."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _window(past: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw windows (B, context) -> MOMENT's input (B, 1, seq_len) and input mask (B, seq_len):
    the last seq_len steps, left-padded with masked zeros when the context is shorter."""
    past = past[:, -seq_len:]
    pad = seq_len - past.shape[1]
    mask = torch.ones(past.shape[0], seq_len, dtype=past.dtype, device=past.device)
    mask[:, :pad] = 0
    return nn.functional.pad(past, (pad, 0)).unsqueeze(1), mask


def _horizon_of(model: nn.Module) -> int | None:
    """The horizon of the model's forecasting head, None while it has the reconstruction head."""
    head = _momentfm().ForecastingHead
    if model.task_name == FORECASTING and isinstance(model.head, head):
        return model.head.linear.out_features
    return None


class MomentAdapter(Adapter):
    """The published MOMENT-1 checkpoints are pretrained for masked reconstruction only. Their
    reconstruction head, never used, is replaced by a forecasting head made by momentfm's
    `init()` from `HEAD_SEED`: at load for `DEFAULT_HORIZON`, and for another horizon by
    `set_windows`. Every pruned model and the full reference copy the same head, the
    re-alignment trains it with the kept layers, and `params` counts it (so it depends on the
    horizon). The head must exist before a model is pruned for re-alignment, or the optimiser
    would not hold its parameters: the engine calls `set_windows` as soon as it knows the window
    (`Setting.for_series`), forecasting installs the head for its horizon on the loaded model
    too, and `loss` refuses a model pruned before its head existed. A saved checkpoint is a
    forecasting checkpoint (task_name, horizon and depth in config.json) that reloads with
    `MOMENTPipeline.from_pretrained(DIR)` and serves only its horizon."""

    family = "moment"

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        return isinstance(config.get("t5_config"), dict) and {
            "patch_len",
            "seq_len",
            "transformer_backbone",
        } <= set(config)

    def __init__(self, model: nn.Module, source: str, config: dict | None = None) -> None:
        super().__init__(model, source)
        # config.json as loaded (by default, the config the model was built from): the configs
        # autoprune saves are derived from it
        self.checkpoint_config = copy.deepcopy(config or model._hub_mixin_config)
        # a reconstruction checkpoint gets new forecasting heads; a trained one keeps its own
        self.new_head = _horizon_of(model) is None
        if self.new_head:
            self.set_windows(model.seq_len, DEFAULT_HORIZON)

    @classmethod
    def load(cls, source: str | Path) -> MomentAdapter:
        directory = resolve_directory(source)
        check_checkpoint(directory, hint="save the model with MOMENTPipeline.save_pretrained")
        try:
            config = json.loads((directory / "config.json").read_text())
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{directory / 'config.json'} is not valid JSON ({exc})") from None
        # momentfm builds the T5 backbone from the inline t5_config, so loading never reaches
        # the hub
        if not isinstance(config, dict) or not isinstance(config.get("t5_config"), dict):
            raise ModelLoadError(
                f"{directory / 'config.json'} has no inline t5_config; momentfm 0.1.4 builds the "
                "T5 backbone from it (the published MOMENT-1 configs carry it)"
            )
        MOMENTPipeline = _momentfm().MOMENTPipeline
        try:
            with _quiet():
                model = MOMENTPipeline.from_pretrained(
                    str(directory),
                    strict=True,
                    # recomputation only trades speed for memory; a 64-token encoder needs little
                    model_kwargs={"enable_gradient_checkpointing": False},
                )
        except (
            AttributeError,
            KeyError,
            RuntimeError,
            TypeError,
            ValueError,
            json.JSONDecodeError,
        ) as exc:
            text = str(exc).strip()
            first_line = text.splitlines()[0] if text else type(exc).__name__
            raise ModelLoadError(
                f"model directory {str(directory)!r} does not load as a MOMENTPipeline: "
                f"{first_line[:300]} (config.json and {WEIGHTS} must come from the same model)"
            ) from None
        # momentfm freezes embedder and encoder (linear probing); re-alignment trains them
        model.requires_grad_(True)
        return cls(model, str(source), config)

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return model.encoder.block

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        return (self.model.patch_len,)

    @functools.cached_property
    def _counts(self) -> tuple[int, tuple[int, ...]]:
        """Block 0's relative-position bias is not saved by dropping block 0 (the first kept
        block takes it over), so it counts with the model, not with the layer."""
        blocks = self.layers(self.model)
        layers = [unique_params(block) for block in blocks]
        layers[0] -= unique_params(blocks[0].layer[0].SelfAttention.relative_attention_bias)
        return unique_params(self.model), tuple(layers)

    def saved_config(self, model: nn.Module) -> dict:
        """config.json for `model`: the loaded config with the model's depth and head."""
        config = copy.deepcopy(self.checkpoint_config)
        config["t5_config"]["num_layers"] = len(self.layers(model))
        config.setdefault("model_kwargs", {})  # from_pretrained passes it to MOMENTPipeline
        horizon = _horizon_of(model)
        if horizon is not None:
            config.update(task_name=FORECASTING, forecast_horizon=horizon)
        return config

    def _sync_config(self, model: nn.Module) -> None:
        """PyTorchModelHubMixin saves the config recorded at creation, and momentfm keeps its
        own copy: both must say what the model now is, or a reload builds another model."""
        config = self.saved_config(model)
        model._hub_mixin_config = config
        model.config.t5_config = config["t5_config"]
        model.encoder.config.num_layers = config["t5_config"]["num_layers"]

    def set_windows(self, context_length: int, horizon: int) -> None:
        """Make the loaded model forecast `horizon` steps: a fresh forecasting head for it, made
        by momentfm's `init()` from `HEAD_SEED` (the same head in every process); a trained head
        must already fit. Call before pruning: pruned models copy the loaded one. MOMENT reads
        `seq_len` steps whatever the context, so `context_length` changes nothing."""
        model = self.model
        trained = _horizon_of(model)
        if trained == horizon:
            return
        if not self.new_head:
            raise AutoPruneError(
                f"this MOMENT checkpoint's forecasting head was trained for horizon {trained}, "
                f"not {horizon}; use --horizon {trained}"
            )
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[]), _quiet():
            torch.manual_seed(HEAD_SEED)
            model.config.forecast_horizon = horizon
            model.new_task_name = FORECASTING
            model.init()
        model.head.to(device).train(model.training)  # a new module starts in training mode
        self._sync_config(model)
        self.__dict__.pop("_counts", None)  # the head's size depends on the horizon

    def _head(self, model: nn.Module, horizon: int) -> None:
        """Make sure `model` forecasts `horizon` steps: a model with a head for it keeps it,
        another gets a copy of the loaded model's head for it."""
        if _horizon_of(model) == horizon:
            return
        self.set_windows(model.seq_len, horizon)
        if model is self.model:
            return
        device = next(model.parameters()).device
        model.head = copy.deepcopy(self.model.head).to(device).train(model.training)
        model.task_name = FORECASTING
        model.config.forecast_horizon = horizon
        self._sync_config(model)

    def prune(self, keep: Sequence[int]) -> nn.Module:
        keep = self.check_keep(keep)
        blocks = self.layers(self.model)
        # dropped blocks map to None in deepcopy's memo, so they are never copied
        memo = {id(block): None for i, block in enumerate(blocks) if i not in keep}
        pruned = copy.deepcopy(self.model, memo)
        kept = [pruned.encoder.block[i] for i in keep]
        # T5 keeps its relative-position bias in block 0 only: without block 0 the first kept
        # block takes a copy, where a fresh T5 stack of that depth has it
        if keep[0] != 0:
            owner = kept[0].layer[0].SelfAttention
            owner.relative_attention_bias = copy.deepcopy(
                blocks[0].layer[0].SelfAttention.relative_attention_bias
            )
            owner.has_relative_attention_bias = True
        for index, block in enumerate(kept):
            block.layer[0].SelfAttention.layer_idx = index  # as a fresh stack numbers them
        pruned.encoder.block = nn.ModuleList(kept)
        self._sync_config(pruned)
        return pruned

    def save(self, model: nn.Module, directory: str | Path) -> None:
        with _quiet():
            model.save_pretrained(str(directory), config=self.saved_config(model))

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """Run T5's attention eagerly (transformers' own eager function; the default SDPA never
        materialises the probabilities) and append each layer's to `sink`."""
        t5 = _t5()
        real = t5.ALL_ATTENTION_FUNCTIONS

        def eager(module, query, key, value, attention_mask, **kwargs):
            if attention_mask is not None and attention_mask.dtype == torch.bool:
                blocked = torch.finfo(query.dtype).min
                attention_mask = torch.zeros_like(attention_mask, dtype=query.dtype).masked_fill(
                    ~attention_mask, blocked
                )
            output, probabilities = t5.eager_attention_forward(
                module, query, key, value, attention_mask, **kwargs
            )
            sink.append(probabilities.detach())
            return output, probabilities

        class Eager:
            def __getattr__(self, name: str):
                return getattr(real, name)

            @staticmethod
            def get_interface(implementation, default):
                return eager

        t5.ALL_ATTENTION_FUNCTIONS = Eager()
        try:
            yield
        finally:
            t5.ALL_ATTENTION_FUNCTIONS = real

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """MOMENT's forecasting fine-tune loss, the mean squared error of the forecast, on each
        window's RevIN scale so that every window weighs the same."""
        horizon = future.shape[1]
        if _horizon_of(model) != horizon:
            raise AutoPruneError(
                f"this MOMENT model has no forecasting head for horizon {horizon}, so the "
                "re-alignment could not train one; call adapter.set_windows(context_length, "
                "horizon) before pruning"
            )
        x, mask = _window(past, model.seq_len)
        forecast = model(x_enc=x, input_mask=mask).forecast[:, 0]  # MOMENT.forecast, raw scale
        scale = model.normalizer.stdev[:, 0]  # RevIN's statistics of these windows
        return ((forecast - future) / scale).square().mean()

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> MomentStaged:
        self._head(model, horizon)
        return MomentStaged(model, past)

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """The point forecast as a single path (B, 1, horizon); `num_samples` does not apply."""
        return self.forward(model, past, horizon, patch_size).unsqueeze(1)


class MomentStaged(Staged):
    """`MOMENT.forecast` cut at the T5 blocks: RevIN, patching and patch embedding, then the
    stack's dropout, mask and position bias as `T5Stack.forward` makes them, each block, the
    final norm, the forecasting head and RevIN's inverse. The position bias comes from the
    model's block 0, which in a pruned model is the first kept block holding block 0's bias; the
    zero-shot screen applies subsets of the loaded model's blocks, and gets the same."""

    def __init__(self, model: nn.Module, past: torch.Tensor) -> None:
        self.model = model
        x, self.input_mask = _window(past, model.seq_len)
        normed = model.normalizer(x=x, mask=self.input_mask, mode="norm")
        self.statistics = (model.normalizer.mean, model.normalizer.stdev)
        self.x = torch.nan_to_num(normed, nan=0, posinf=0, neginf=0)

    def embed(self) -> torch.Tensor:
        model = self.model
        patches = model.tokenizer(x=self.x)
        embedded = model.patch_embedding(patches, mask=torch.ones_like(self.input_mask))
        batch, channels, self.patches, width = embedded.shape
        embedded = embedded.reshape(batch * channels, self.patches, width)
        masking = require("momentfm.utils.masking", EXTRA).Masking
        patch_mask = masking.convert_seq_to_patch_view(self.input_mask, model.patch_len)
        masks = require("transformers.masking_utils", EXTRA)
        self.attention_mask = masks.create_bidirectional_mask(
            config=model.encoder.config,
            inputs_embeds=embedded,
            attention_mask=patch_mask.repeat_interleave(channels, dim=0),
        )
        self.position_bias = (
            model.encoder.block[0]
            .layer[0]
            .SelfAttention.compute_bias(self.patches, self.patches, device=embedded.device)
        )
        return model.encoder.dropout(embedded)

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(hidden, self.attention_mask, self.position_bias)[0]

    def distribution(self, hidden: torch.Tensor) -> torch.Tensor:
        """The point forecast (B, horizon) on the raw scale."""
        model = self.model
        hidden = model.encoder.dropout(model.encoder.final_layer_norm(hidden))
        hidden = hidden.reshape(-1, 1, self.patches, hidden.shape[-1])
        # RevIN keeps the statistics of the last windows it normalised: restore these windows'
        model.normalizer.mean, model.normalizer.stdev = self.statistics
        return model.normalizer(x=model.head(hidden), mode="denorm")[:, 0]

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        forecast = self.distribution(hidden)
        scale = self.statistics[1][:, 0]
        return forecast, ((forecast - future) / scale).square().mean(dim=1)
