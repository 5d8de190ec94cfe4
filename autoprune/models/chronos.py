"""Chronos-Bolt and Chronos-2 (Amazon's `chronos-forecasting`): the T5 blocks are the layers.

Checkpoints, submodules and the training loss are the library's own; both heads predict
quantiles, read as paths (`quantiles_to_paths`). Chronos-Bolt's layers are its encoder blocks
(0..E-1) then its decoder blocks (E..E+D-1), two layer groups in one keep-set index space;
horizons past its `prediction_length` (64 published) are forecast as
`ChronosBoltPipeline.predict` does. Chronos-2 forecasts in one pass only.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

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
    unique_params,
)

EXTRA = "chronos"

# Published shapes. small and base: their config.json on the hub (amazon/chronos-bolt-base,
# and a verbatim copy of amazon/chronos-bolt-small's). tiny and mini: the google/t5-efficient-
# tiny / -mini shapes their model cards name. The counts are exact - rebuilt from these with the
# library's own class (tests/test_family_chronos.py) - and agree with the hub: tiny's
# safetensors total is 8,652,672; mini, small and base are listed as 21.2M, 47.7M and 0.2B.
BOLT_CHRONOS_CONFIG = dict(
    context_length=2048,
    input_patch_size=16,
    input_patch_stride=16,
    prediction_length=64,
    quantiles=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    use_reg_token=True,
)
_BOLT_SHAPES = {
    "tiny": (dict(d_model=256, d_ff=1024, d_kv=64, num_heads=4, num_layers=4), 8_652_672),
    "mini": (dict(d_model=384, d_ff=1536, d_kv=64, num_heads=8, num_layers=4), 21_236_096),
    "small": (dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6), 47_718_016),
    "base": (dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12), 205_292_928),
}
# amazon/chronos-2's config.json (seen through a verbatim copy on the hub); "120M" on its card.
CHRONOS2_CHRONOS_CONFIG = dict(
    context_length=8192,
    input_patch_size=16,
    input_patch_stride=16,
    output_patch_size=16,
    max_output_patches=64,
    quantiles=[0.01, 0.05, *(round(0.1 + 0.05 * i, 2) for i in range(17)), 0.95, 0.99],
    time_encoding_scale=8192,
    use_arcsinh=True,
    use_reg_token=True,
)
_CHRONOS2_SHAPE = dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12)

ALIASES = (
    *(
        ModelEntry(
            f"chronos-bolt-{size}",
            "chronos-bolt",
            f"amazon/chronos-bolt-{size}",
            f"Chronos-Bolt {size} (Amazon; T5 encoder-decoder, encoder and decoder blocks)",
            2 * shape["num_layers"],  # encoder blocks, then as many decoder blocks
            params,
            dict(shape, num_decoder_layers=shape["num_layers"], patch_sizes=(16,)),
        )
        for size, (shape, params) in _BOLT_SHAPES.items()
    ),
    ModelEntry(
        "chronos-2",
        "chronos-2",
        "amazon/chronos-2",
        "Chronos-2 (Amazon; encoder-only with group attention)",
        _CHRONOS2_SHAPE["num_layers"],
        119_477_664,
        dict(_CHRONOS2_SHAPE, patch_sizes=(16,)),
    ),
)


def _load_strict(model_class: type, directory: Path) -> nn.Module:
    """`from_pretrained` fills missing weights with random ones and only logs it; autoprune
    refuses such a checkpoint instead of pruning a silently different model."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # progress bars
            model, info = model_class.from_pretrained(
                str(directory), use_safetensors=True, output_loading_info=True
            )
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"model directory {str(directory)!r} does not load as a {model_class.__name__}: "
            f"{first[:300]}"
        ) from None
    wrong = {
        kind: sorted(key if isinstance(key, str) else key[0] for key in info[kind])[:3]
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
        if info.get(kind)
    }
    if wrong:
        raise ModelLoadError(
            f"model directory {str(directory)!r}: config.json and {WEIGHTS} do not match "
            f"({'; '.join(f'{k}: {v}' for k, v in wrong.items())}); they must come from the "
            "same model"
        )
    return model.eval()


def _quantile_loss(
    scaled: torch.Tensor, target: torch.Tensor, levels: torch.Tensor, sum_levels: bool
) -> torch.Tensor:
    """The families' training loss per window, on the model's own scale: twice the pinball
    loss, reduced over quantile levels as the family's loss does (Chronos-2 sums them,
    Chronos-Bolt averages them) and averaged over the horizon. (B, Q, H), (B, H) -> (B,)."""
    target = target.unsqueeze(1)
    below = (target <= scaled).to(scaled.dtype)
    loss = 2 * torch.abs((target - scaled) * (below - levels.view(1, -1, 1)))
    per_step = loss.sum(dim=1) if sum_levels else loss.mean(dim=1)
    return per_step.mean(dim=1)


class _QuantileStaged(Staged):
    """A forward pass that ends in a quantile head: `quantiles` gives the horizon's quantiles
    on the model's scaled (training) scale and on the raw scale."""

    model: nn.Module
    loc_scale: tuple[torch.Tensor, torch.Tensor]
    sum_levels: ClassVar[bool]

    @abstractmethod
    def quantiles(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled and raw quantiles (B, Q, horizon) from the stack's last hidden state."""

    def distribution(self, hidden: torch.Tensor) -> torch.Tensor:
        """Raw-scale quantiles (B, Q, horizon) at the model's levels."""
        return self.quantiles(hidden)[1]

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scaled, raw = self.quantiles(hidden)
        levels = self.model.quantiles.to(scaled.dtype)
        median = raw[:, self.model.chronos_config.quantiles.index(0.5)]
        target, _ = self.model.instance_norm(future, self.loc_scale)
        return median, _quantile_loss(scaled, target.to(scaled.dtype), levels, self.sum_levels)


class _ChronosAdapter(Adapter):
    """What both families share: loading, the encoder block stack, saving, forecasting."""

    model_module: ClassVar[str]
    model_class_name: ClassVar[str]

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        return cls.model_class_name in (config.get("architectures") or []) and isinstance(
            config.get("chronos_config"), dict
        )

    @classmethod
    def model_class(cls) -> type:
        return getattr(require(cls.model_module, EXTRA), cls.model_class_name)

    @classmethod
    def load(cls, source: str | Path) -> Adapter:
        directory = resolve_directory(source)
        check_checkpoint(
            directory, hint=f"save the model with {cls.model_class_name}.save_pretrained"
        )
        return cls(_load_strict(cls.model_class(), directory), str(source))

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return model.encoder.block

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        return (self.model.chronos_config.input_patch_size,)

    def _copy_keeping(self, keep: Sequence[int]) -> tuple[nn.Module, list[nn.Module]]:
        """A deep copy in which dropped blocks were never copied (they map to None in the memo,
        so pruning a large model costs the memory of the kept blocks only), and its kept
        blocks, in order."""
        memo = {id(b): None for i, b in enumerate(self.layers(self.model)) if i not in keep}
        pruned = copy.deepcopy(self.model, memo)
        return pruned, [self.layers(pruned)[i] for i in keep]

    def _depths(self, model: nn.Module) -> list[tuple[int, int]]:
        """(what the config says, how many blocks the model has) for each stack."""
        return [(model.config.num_layers, len(model.encoder.block))]

    def save(self, model: nn.Module, directory: str | Path) -> None:
        for said, depth in self._depths(model):
            if said != depth:
                raise ModelLoadError(
                    f"model config says {said} layers but the model has {depth}; "
                    "prune it with the adapter's prune()"
                )
        with contextlib.redirect_stderr(io.StringIO()):  # progress bars
            model.save_pretrained(str(directory))

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """Deterministic: the quantile head's forecast read as paths (no seed needed)."""
        quantiles = self.forward(model, past, horizon, patch_size)
        return quantiles_to_paths(quantiles, model.chronos_config.quantiles, num_samples)


class ChronosBoltAdapter(_ChronosAdapter):
    family = "chronos-bolt"
    model_module = "chronos.chronos_bolt"
    model_class_name = "ChronosBoltModelForForecasting"

    def __init__(self, model: nn.Module, source: str) -> None:
        super().__init__(model, source)
        self._sink: list[torch.Tensor] | None = None

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The encoder blocks, then the decoder blocks: the same modules, in a new list."""
        return nn.ModuleList([*model.encoder.block, *model.decoder.block])

    def screen_steps(self, horizon: int) -> int:
        """The first pass's steps only: past `prediction_length` the pipeline runs every
        kept block again for each of the 9 quantile paths. On a tiny Bolt that made the screen
        of a 96-step horizon cost ~110x one pass (162 s against 1.4 s, 16 trials' worth, so
        `--screen auto` skipped it) and a rung's evaluation 70% of the rung, for a ranking no
        better than the first pass's (docs/search-efficiency.md)."""
        return min(horizon, self.model.chronos_config.prediction_length)

    def layer_groups(self, model: nn.Module) -> tuple[range, ...]:
        encoder, decoder = len(model.encoder.block), len(model.decoder.block)
        return range(encoder), range(encoder, encoder + decoder)

    @property
    def always_keep(self) -> tuple[int, ...]:
        """The last decoder block, whose output the quantile head reads. Re-aligned, no keep set
        without it has added to a true front's hypervolume: on six exhaustive tables of a tiny
        Bolt (docs/search-efficiency.md, stops 64 and 66) every front keep set inside the
        reference box kept it, and dropping it alone cost 1.10x-1.28x the full model's error,
        any other block at most 1.05x. Keeping it halves the space and the same front is found
        with less compute."""
        return (self.num_layers - 1,)

    def _depths(self, model: nn.Module) -> list[tuple[int, int]]:
        return [
            (model.config.num_layers, len(model.encoder.block)),
            (model.config.num_decoder_layers, len(model.decoder.block)),
        ]

    @staticmethod
    def _bias_owner(stack: nn.Module) -> nn.Module | None:
        """The self-attention of a T5 stack that holds its relative-position bias (block 0's,
        or the first kept block's); None for a stack without blocks."""
        return next(
            (
                b.layer[0].SelfAttention
                for b in stack.block
                if b.layer[0].SelfAttention.has_relative_attention_bias
            ),
            None,
        )

    @functools.cached_property
    def _biases(self) -> tuple[int, int]:
        """The parameters of the encoder's and of the decoder's relative-attention bias."""
        owners = (self._bias_owner(s) for s in (self.model.encoder, self.model.decoder))
        return tuple(0 if o is None else unique_params(o.relative_attention_bias) for o in owners)

    @functools.cached_property
    def _counts(self) -> tuple[int, tuple[int, ...]]:
        """Each stack's relative-attention bias is counted with the stack, not with its block
        0: a pruned model keeps it whichever blocks of that stack it keeps (and loses it only
        with the stack's last block, see `params`)."""

        def own(block: nn.Module) -> int:
            attention = block.layer[0].SelfAttention
            if not attention.has_relative_attention_bias:
                return unique_params(block)
            return unique_params(block) - unique_params(attention.relative_attention_bias)

        layers = tuple(own(b) for b in self.layers(self.model))
        return unique_params(self.model), layers

    def params(self, keep: Sequence[int] | None = None) -> int:
        total = super().params(keep)
        if keep is None:
            return total
        keep = self.check_keep(keep)
        empty = [not any(i in group for i in keep) for group in self.groups]
        return total - sum(bias for bias, gone in zip(self._biases, empty, strict=True) if gone)

    def prune(self, keep: Sequence[int]) -> nn.Module:
        """Keeps the `keep` blocks of each stack. A stack may keep no block at all: it is then
        its final layer norm only, which forwards, saves and reloads (a decoder without blocks
        forecasts from the series' scale alone; screening ranks such sets, it does not forbid
        them). T5 keeps a stack's relative-position bias in block 0 only, so when block 0 goes
        the stack's first kept block takes it over, and the pruned model saves and reloads."""
        keep = self.check_keep(keep)
        pruned, kept = self._copy_keeping(keep)
        encoder, decoder = self.groups
        for stack, group, original in (
            (pruned.encoder, encoder, self.model.encoder),
            (pruned.decoder, decoder, self.model.decoder),
        ):
            blocks = [b for i, b in zip(keep, kept, strict=True) if i in group]
            if blocks and not blocks[0].layer[0].SelfAttention.has_relative_attention_bias:
                first = blocks[0].layer[0].SelfAttention  # block 0 was dropped: hand its bias over
                first.relative_attention_bias = copy.deepcopy(
                    self._bias_owner(original).relative_attention_bias
                )
                first.has_relative_attention_bias = True
            for index, block in enumerate(blocks):  # the decoder's cache is keyed by layer_idx
                for layer in block.layer[:-1]:  # self-attention (and cross-attention)
                    attention = getattr(layer, "SelfAttention", None) or layer.EncDecAttention
                    attention.layer_idx = index
            stack.block = nn.ModuleList(blocks)
            stack.config.num_layers = len(blocks)  # each stack holds its own copy of the config
        pruned.config.num_layers = len(pruned.encoder.block)
        pruned.config.num_decoder_layers = len(pruned.decoder.block)
        return pruned

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """The model's own loss on the first `prediction_length` steps, the only ones it takes."""
        steps = model.chronos_config.prediction_length
        return model(context=past, target=future[:, :steps]).loss

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> BoltStaged:
        return BoltStaged(self, model, past, horizon)

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """Compute attention eagerly (sdpa never materialises the probabilities) and append
        each block's self-attention probabilities to `sink`, one per layer: the encoder's
        (B, heads, T, T), then the decoder's over its one token (B, heads, 1, 1). The
        decoder's cross-attention and the autoregressive continuation passes are not
        recorded."""
        import transformers.models.t5.modeling_t5 as t5

        real = t5.ALL_ATTENTION_FUNCTIONS
        adapter = self

        class Eager:
            def __getattr__(self, name: str):
                return getattr(real, name)

            @staticmethod
            def get_interface(name, default):
                def attend(module, query, key, value, mask, **kwargs):
                    if mask is not None and mask.dtype == torch.bool:  # sdpa's: True = attend
                        additive = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
                        mask = additive.masked_fill(~mask, torch.finfo(query.dtype).min)
                    output, probs = t5.eager_attention_forward(
                        module, query, key, value, mask, **kwargs
                    )
                    # self-attention: the encoder's, or the decoder's (causal); not cross
                    if adapter._sink is not None and (module.is_causal or not module.is_decoder):
                        adapter._sink.append(probs.detach())
                    return output, probs

                return attend

        t5.ALL_ATTENTION_FUNCTIONS, self._sink = Eager(), sink
        try:
            yield
        finally:
            t5.ALL_ATTENTION_FUNCTIONS, self._sink = real, None


class BoltState(tuple):
    """A staged hidden state: (encoder hidden (B, T, d), None) while only encoder blocks have
    run; (encoder output after the encoder's final norm (B, T, d), decoder hidden (B, 1, d))
    once a decoder block has. It remembers the blocks that made it, because a continuation
    pass must run the same blocks."""

    blocks: tuple[nn.Module, ...]

    def __new__(
        cls,
        encoder: torch.Tensor,
        decoder: torch.Tensor | None,
        blocks: tuple[nn.Module, ...],
    ) -> BoltState:
        state = super().__new__(cls, (encoder, decoder))
        state.blocks = blocks
        return state


class BoltStaged(_QuantileStaged):
    """`ChronosBoltModelForForecasting.forward` cut at block boundaries, encoder blocks then
    decoder blocks, with the pipeline's autoregressive continuation past `prediction_length`
    (through the same kept blocks, so screening, latency and evaluation see its forecast).

    States are `BoltState` pairs. The first decoder block finalises the encoder (its final
    norm and dropout, as `T5Stack` does) and starts the decoder from its start token; the head
    finalises whatever is pending, so a keep set without decoder blocks (or without encoder
    blocks) forecasts what the pruned model's stacks without blocks compute. Each stack's
    relative-position bias is computed once from its bias owner and given to every block of
    the stack, as `T5Stack` does (block 0 computes it, the others reuse it).
    """

    # ChronosBoltModelForForecasting's loss averages over levels and sums over its
    # prediction_length steps; per window, averaged over the horizon, that is loss / steps
    sum_levels = False

    def __init__(
        self,
        adapter: ChronosBoltAdapter,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        hooks: bool = True,
    ) -> None:
        from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

        self.adapter, self.model, self.horizon, self.hooks = adapter, model, horizon, hooks
        config = model.chronos_config
        self.context = past.to(torch.float32)[..., -config.context_length :]
        batch = self.context.shape[0]
        # ChronosBoltModelForForecasting.encode, up to the encoder stack
        observed = torch.isnan(self.context).logical_not().to(self.context.dtype)
        scaled, self.loc_scale = model.instance_norm(self.context)
        scaled, observed = scaled.to(model.dtype), observed.to(model.dtype)
        patched_mask = torch.nan_to_num(model.patch(observed), nan=0.0)
        patched = torch.where(patched_mask > 0.0, model.patch(scaled), 0.0)
        embeds = model.input_patch_embedding(torch.cat([patched, patched_mask], dim=-1))
        mask = patched_mask.sum(dim=-1) > 0
        if config.use_reg_token:
            reg = torch.full((batch, 1), model.config.reg_token_id, device=embeds.device)
            embeds = torch.cat([embeds, model.shared(reg)], dim=-2)
            mask = torch.cat([mask.to(model.dtype), torch.ones_like(reg).to(model.dtype)], dim=-1)
        self.embeds, self.mask = embeds, mask
        # T5Stack.forward of the encoder, before its blocks
        encoder, decoder = model.encoder, model.decoder
        self.block_mask = create_bidirectional_mask(
            config=encoder.config, inputs_embeds=embeds, attention_mask=mask
        )
        tokens = embeds.shape[1]
        owner = adapter._bias_owner(encoder)
        self.bias = None if owner is None else owner.compute_bias(tokens, tokens, embeds.device)
        # ChronosBoltModelForForecasting.decode and T5Stack.forward of the decoder, before its
        # blocks: the start token, attending to itself and (unmasked patches) to the encoder
        start = torch.full((batch, 1), model.config.decoder_start_token_id, device=embeds.device)
        self.start = decoder.embed_tokens(start)
        self.decoder_mask = create_causal_mask(
            config=decoder.config, inputs_embeds=self.start, attention_mask=None, cache=None
        )
        self.cross_mask = create_bidirectional_mask(
            config=decoder.config,
            inputs_embeds=self.start,
            attention_mask=mask,
            encoder_hidden_states=embeds,
        )
        owner = adapter._bias_owner(decoder)
        self.decoder_bias = None if owner is None else owner.compute_bias(1, 1, embeds.device)

    def embed(self) -> BoltState:
        return BoltState(self.model.encoder.dropout(self.embeds), None, ())

    def _finalised(self, state: BoltState) -> BoltState:
        """The state at the decoder's first block: the encoder's final norm applied, the
        decoder at its start token."""
        if state[1] is not None:
            return state
        encoder, decoder = self.model.encoder, self.model.decoder
        memory = encoder.dropout(encoder.final_layer_norm(state[0]))
        return BoltState(memory, decoder.dropout(self.start), getattr(state, "blocks", None))

    def apply(self, layer: nn.Module, hidden: BoltState) -> BoltState:
        # a continuation pass calls forward directly: hooks (importance capture) see one pass
        run = layer if self.hooks else layer.forward
        blocks = (*hidden.blocks, layer) if isinstance(hidden, BoltState) else None
        if not layer.is_decoder:
            if hidden[1] is not None:
                raise AutoPruneError("an encoder block cannot follow a decoder block")
            output = run(hidden[0], self.block_mask, self.bias)[0]
            return BoltState(output, None, blocks)
        memory, state = self._finalised(hidden)
        output = run(state, self.decoder_mask, self.decoder_bias, memory, self.cross_mask)[0]
        return BoltState(memory, output, blocks)

    def _one_pass(self, hidden: BoltState) -> tuple[torch.Tensor, torch.Tensor]:
        """Whatever is pending of the two stacks and the quantile head: scaled and raw
        quantiles (B, Q, prediction_length)."""
        model, decoder = self.model, self.model.decoder
        decoded = decoder.dropout(decoder.final_layer_norm(self._finalised(hidden)[1]))
        batch, steps = decoded.shape[0], model.chronos_config.prediction_length
        scaled = model.output_patch_embedding(decoded).view(batch, model.num_quantiles, steps)
        raw = model.instance_norm.inverse(scaled.view(batch, -1), self.loc_scale)
        return scaled, raw.view(batch, model.num_quantiles, steps)

    def quantiles(self, hidden: BoltState) -> tuple[torch.Tensor, torch.Tensor]:
        scaled, prediction = self._one_pass(hidden)
        steps = self.model.chronos_config.prediction_length
        if self.horizon <= steps:
            return scaled[..., : self.horizon], prediction[..., : self.horizon]
        blocks = getattr(hidden, "blocks", None)
        if blocks is None:
            raise AutoPruneError(
                f"a {self.horizon}-step Chronos-Bolt forecast continues through the blocks that "
                "made the hidden state; pass one made by a staged pass's embed() and apply()"
            )
        raw = [prediction, *self._continue(prediction, blocks)]
        raw = torch.cat(raw, dim=-1)[..., : self.horizon]
        batch, levels, _ = raw.shape
        rest, _ = self.model.instance_norm(raw[..., steps:].reshape(batch, -1), self.loc_scale)
        return torch.cat([scaled, rest.view(batch, levels, -1).to(scaled.dtype)], dim=-1), raw

    def _continue(
        self, prediction: torch.Tensor, blocks: tuple[nn.Module, ...]
    ) -> list[torch.Tensor]:
        """ChronosBoltPipeline.predict beyond the first pass: every quantile path extends the
        context, and the Q x Q forecasts are reduced to Q quantiles by torch.quantile."""
        model, steps = self.model, self.model.chronos_config.prediction_length
        levels = torch.tensor(model.chronos_config.quantiles, device=prediction.device)
        context = self.context.unsqueeze(1).repeat(1, len(levels), 1)
        predictions, remaining = [], self.horizon - steps
        sink, self.adapter._sink = self.adapter._sink, None
        try:
            while remaining > 0:
                context = torch.cat([context, prediction], dim=-1)
                context = context[..., -model.chronos_config.context_length :]
                batch, paths, length = context.shape
                flat = context.reshape(batch * paths, length)
                sub = BoltStaged(self.adapter, model, flat, steps, hooks=False)
                forecasts = sub._one_pass(sub.through(blocks))[1].to(context.dtype)
                forecasts = forecasts.reshape(batch, paths * len(levels), -1)
                prediction = torch.quantile(forecasts, q=levels, dim=1).transpose(0, 1)
                predictions.append(prediction)
                remaining -= prediction.shape[-1]
        finally:
            self.adapter._sink = sink
        return predictions


class Chronos2Adapter(_ChronosAdapter):
    family = "chronos-2"
    model_module = "chronos.chronos2"
    model_class_name = "Chronos2Model"

    def prune(self, keep: Sequence[int]) -> nn.Module:
        keep = self.check_keep(keep)
        pruned, kept = self._copy_keeping(keep)
        pruned.encoder.block = nn.ModuleList(kept)
        # Chronos2CoreConfig.num_layers is the only depth (num_hidden_layers maps onto it)
        pruned.config.num_layers = len(keep)
        return pruned

    def set_windows(self, context_length: int, horizon: int) -> None:
        """Refuse a horizon past the single pass before any study is created."""
        self.output_patches(self.model, horizon)

    def output_patches(self, model: nn.Module, horizon: int) -> int:
        """Output patches for `horizon`; past one pass it is refused, because the pipeline's
        long-horizon unrolling is a heuristic outside the model that autoprune does not copy."""
        config = model.chronos_config
        patches = math.ceil(horizon / config.output_patch_size)
        if patches > config.max_output_patches:
            longest = config.max_output_patches * config.output_patch_size
            raise AutoPruneError(
                f"--horizon {horizon} is longer than the {longest} steps Chronos-2 forecasts in "
                f"one pass ({config.max_output_patches} patches of {config.output_patch_size}); "
                f"use --horizon {longest} or less"
            )
        return patches

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        patches = self.output_patches(model, future.shape[1])
        return model(context=past, future_target=future, num_output_patches=patches).loss

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> Chronos2Staged:
        return Chronos2Staged(model, past, horizon, self.output_patches(model, horizon))

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """Compute attention eagerly (sdpa never materialises the probabilities) and append
        each block's time self-attention probabilities to `sink` (group attention mixes
        series across the batch, not tokens, and is left out)."""
        from chronos.chronos2.layers import MHA

        real_eager, real_sdpa = MHA._eager_attention, MHA._sdpa_attention

        def eager(module, query, key, value, mask):
            output, probs = real_eager(module, query, key, value, mask)
            if module.use_rope:  # time attention; group attention has no positions
                sink.append(probs.detach())
            return output, probs

        MHA._eager_attention = MHA._sdpa_attention = eager
        try:
            yield
        finally:
            MHA._eager_attention, MHA._sdpa_attention = real_eager, real_sdpa


class Chronos2Staged(_QuantileStaged):
    """`Chronos2Model.forward` cut at encoder-block boundaries: context patches, [REG] and the
    future patches go through the blocks together; the head reads the future patches."""

    sum_levels = True  # Chronos2Model._compute_loss: sum over levels, mean over the horizon

    def __init__(self, model: nn.Module, past: torch.Tensor, horizon: int, patches: int) -> None:
        self.model, self.horizon, self.patches = model, horizon, patches
        config, batch = model.chronos_config, past.shape[0]
        # Chronos2Model.encode, up to the encoder
        patched, mask, self.loc_scale = model._prepare_patched_context(context=past)
        embeds = model.input_patch_embedding(patched)
        if config.use_reg_token:
            reg = torch.full((batch, 1), model.config.reg_token_id, device=embeds.device)
            embeds = torch.cat([embeds, model.shared(reg)], dim=-2)
            mask = torch.cat([mask.to(model.dtype), torch.ones_like(reg).to(model.dtype)], dim=-1)
        future, _ = model._prepare_patched_future(None, None, self.loc_scale, patches, batch)
        embeds = torch.cat([embeds, model.input_patch_embedding(future)], dim=-2)
        mask = torch.cat(
            [mask, torch.ones(batch, patches, dtype=model.dtype, device=embeds.device)], dim=-1
        )
        groups = torch.arange(batch, device=embeds.device)  # every series on its own
        # Chronos2Encoder.forward, before its blocks
        encoder = model.encoder
        self.embeds = embeds
        self.position_ids = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0)
        self.time_mask = encoder._expand_and_invert_time_attention_mask(mask, embeds.dtype)
        self.group_mask = encoder._construct_and_invert_group_time_mask(groups, mask, embeds.dtype)

    def embed(self) -> torch.Tensor:
        return self.model.encoder.dropout(self.embeds)

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(
            hidden,
            position_ids=self.position_ids,
            attention_mask=self.time_mask,
            group_time_mask=self.group_mask,
        )[0]

    def quantiles(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model, encoder = self.model, self.model.encoder
        states = encoder.dropout(encoder.final_layer_norm(hidden))[:, -self.patches :]
        batch, levels = hidden.shape[0], model.num_quantiles
        patch = model.chronos_config.output_patch_size
        scaled = model.output_patch_embedding(states).view(batch, self.patches, levels, patch)
        scaled = scaled.transpose(1, 2).reshape(batch, levels, self.patches * patch)
        raw = model.instance_norm.inverse(scaled.reshape(batch, -1), self.loc_scale)
        raw = raw.view(batch, levels, -1)
        return scaled[..., : self.horizon], raw[..., : self.horizon]
