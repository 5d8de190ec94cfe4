"""Moirai-MoE and Moirai 2.0 (uni2ts >= 2.0.0), the decoder-only Moirais: the blocks of
`module.encoder.layers` are the layers, and loading, saving, packing windows into tokens and
forecasting are uni2ts's own. Both attend causally, so a token's output forecasts the next
patch(es): `staged` (screen, importance, latency) is one causal pass over the context that covers
only the first horizon patch(es), while `forecast` is the library's full autoregressive rollout.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from autoprune.errors import ModelLoadError
from autoprune.models._base import ModelEntry, Staged, install_command, quantiles_to_paths
from autoprune.models.moirai import MoiraiAdapter, draw_free

INSTALL = install_command("uni2ts2")


def _library(module: str, *names: str) -> SimpleNamespace:
    """Classes of uni2ts >= 2.0.0, imported lazily (uni2ts pulls in lightning and gluonts)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            imported = importlib.import_module(module)
            from uni2ts.common.torch_util import packed_causal_attention_mask
            from uni2ts.loss import packed
    except ImportError as exc:
        raise ModelLoadError(
            f"this model needs {module!r} from uni2ts >= 2.0.0, which is not installed ({exc}); "
            f"after installing autoprune, run: {INSTALL}"
        ) from None
    return SimpleNamespace(
        **{name: getattr(imported, name) for name in names},
        causal_mask=packed_causal_attention_mask,
        packed=packed,
    )


def _moe() -> SimpleNamespace:
    return _library("uni2ts.model.moirai_moe", "MoiraiMoEModule", "MoiraiMoEForecast")


def _moirai2() -> SimpleNamespace:
    return _library("uni2ts.model.moirai2", "Moirai2Module", "Moirai2Forecast")


# Published configs. Moirai-MoE: the hub repos' config.json (huggingface.co/Salesforce/
# moirai-moe-1.0-R-{small,base}/blob/main/config.json): small d_model 384, d_ff 512, 6 layers;
# base d_model 768, d_ff 1024, 12 layers; both patch_sizes [16], max_seq_len 512, the
# 4-component mixture head, 32 experts a layer (hard-coded by uni2ts). Moirai 2.0-R small:
# d_model 384, d_ff 1024, 6 layers, patch_size 16, num_predict_token 4, quantile levels
# 0.1..0.9, max_seq_len 512, as code that pins its hub config.json lists it. Counts: each module
# built from these with random weights (tests rebuild them); they match the papers' 117M / 935M
# total and 11.4M.
ALIASES = (
    ModelEntry(
        "moirai-moe-1.0-small",
        "moirai-moe",
        "Salesforce/moirai-moe-1.0-R-small",
        "Moirai-MoE 1.0-R small (Salesforce; 32 experts a layer; needs uni2ts 2.0.0)",
        6,
        117_025_800,
        dict(d_model=384, d_ff=512, num_layers=6, num_experts=32, patch_sizes=(16,)),
    ),
    ModelEntry(
        "moirai-moe-1.0-base",
        "moirai-moe",
        "Salesforce/moirai-moe-1.0-R-base",
        "Moirai-MoE 1.0-R base (Salesforce; 32 experts a layer; needs uni2ts 2.0.0)",
        12,
        935_066_592,
        dict(d_model=768, d_ff=1024, num_layers=12, num_experts=32, patch_sizes=(16,)),
    ),
    ModelEntry(
        "moirai-2.0-small",
        "moirai-2",
        "Salesforce/moirai-2.0-R-small",
        "Moirai 2.0-R small (Salesforce; quantile decoder; needs uni2ts 2.0.0)",
        6,
        11_387_208,
        dict(d_model=384, d_ff=1024, num_layers=6, patch_size=16, num_predict_token=4),
    ),
)


def _shift(x: torch.Tensor, k: int, fill: bool | None = None) -> torch.Tensor:
    """Token t + k at position t (dim 1). The last k positions, which have no token t + k, repeat
    the last token (finite values for the loss to see) or hold `fill` (for masks)."""
    tail = x[:, -1:].expand(-1, min(k, x.shape[1]), *x.shape[2:])
    if fill is not None:
        tail = torch.full_like(tail, fill)
    return torch.cat([x[:, k:], tail], dim=1)


def _past_inputs(past: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A Forecast's own inputs for fully observed, unpadded windows."""
    target = past.unsqueeze(-1)
    return (
        target,
        torch.ones_like(target, dtype=torch.bool),
        torch.zeros_like(past, dtype=torch.bool),
    )


class MoiraiMoEAdapter(MoiraiAdapter):
    """Moirai-MoE: MoiraiAdapter's loading, pruning, saving and attention capture, with the
    decoder's forecast, one-step staged pass and next-token loss. Each layer routes its tokens
    with its own row of the encoder's `centroid` buffer (num_layers, 32, d_model), which
    `TransformerEncoder.forward` reads by position, so pruning keeps the rows of the kept layers
    in their order."""

    family = "moirai-moe"
    module_name = "MoiraiMoEModule"

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        return {"distr_output", "patch_sizes", "d_ff"} <= set(config)

    @classmethod
    def _module_class(cls) -> type[nn.Module]:
        return _moe().MoiraiMoEModule

    def _packer(
        self,
        model: nn.Module,
        context_length: int,
        horizon: int,
        patch_size: int,
        num_samples: int = 1,
    ):
        return _moe().MoiraiMoEForecast(
            prediction_length=horizon,
            target_dim=1,
            feat_dynamic_real_dim=0,
            past_feat_dynamic_real_dim=0,
            context_length=context_length,
            module=model,
            patch_size=patch_size,
            num_samples=num_samples,
        )

    def prune(self, keep: Sequence[int]) -> nn.Module:
        keep = self.check_keep(keep)
        pruned = super().prune(keep)
        pruned.encoder.centroid = pruned.encoder.centroid[list(keep)]  # a copy (indexing)
        return pruned

    def save(self, model: nn.Module, directory: str | Path) -> None:
        rows, depth = model.encoder.centroid.shape[0], len(self.layers(model))
        if rows != depth:
            raise ModelLoadError(
                f"the model has {depth} layers but router centroids for {rows}; prune it with "
                "the adapter's prune()"
            )
        super().save(model, directory)

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """Teacher-forced next-token training: the true future is input, the horizon is the
        prediction region, and token t's distribution is scored against token t + 1 wherever
        that lies in the horizon. The scaler sees the context only, as at the first forecast
        step. uni2ts 2.0.0 publishes no training code; this is the paper's objective."""
        packed, patch, _ = self._pack(model, past, future.shape[1], patch_size, future)
        target, observed, sample_id, time_id, variate_id, pred_mask = packed
        distr = model(target, observed, sample_id, time_id, variate_id, pred_mask, patch)
        # the distribution of token t forecasts token t + 1
        return _moe().packed.PackedNLLLoss()(
            pred=draw_free(distr),
            target=_shift(target, 1),
            prediction_mask=_shift(pred_mask, 1, fill=False),
            observed_mask=_shift(observed, 1, fill=False),
            sample_id=_shift(sample_id, 1),
            variate_id=_shift(variate_id, 1),
        )

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> MoiraiMoEStaged:
        return MoiraiMoEStaged(self, model, past, horizon, patch_size)

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        forecaster = self._packer(model, past.shape[1], horizon, patch_size, num_samples)
        devices = [past.device] if past.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return forecaster(*_past_inputs(past))  # (batch, samples, horizon)


class _ContextPass(Staged):
    """The context tokens of a window packed by the family's own converter, with the causal
    mask and the scaler's loc/scale of the library's forward.

    One pass, not a rollout: a rollout cannot be cut at layer boundaries, and importance scores
    read one pass's hooks and one attention map per layer. Causality makes it the library's
    first forecast step, up to rounding (the horizon tokens the library appends cannot change
    the context's outputs). `latency_ms` therefore understates a multi-step forecast by a
    factor that depends on the horizon but not on the keep set, so the front is the same."""

    def __init__(
        self,
        adapter: MoiraiAdapter,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        causal_mask,
    ) -> None:
        self.model, self.horizon, self.patch_size = model, horizon, patch_size
        packed, patch, tokens = adapter._pack(model, past, horizon, patch_size)
        target, observed, sample_id, time_id, variate_id, pred_mask = (
            t[:, :tokens] for t in packed
        )
        self.target, self.observed, self.patch = target, observed, patch[:, :tokens]
        self.time_id, self.variate_id = time_id, variate_id
        self.attn_mask = causal_mask(sample_id, time_id)
        self.loc, self.scale = model.scaler(
            target, observed * ~pred_mask.unsqueeze(-1), sample_id, variate_id
        )


class MoiraiMoEStaged(_ContextPass):
    """MoiraiMoEModule.forward over the context tokens, cut at layer boundaries; the mixture
    head reads the last token only: the distribution of the first horizon patch."""

    def __init__(self, adapter, model, past, horizon, patch_size) -> None:
        super().__init__(adapter, model, past, horizon, patch_size, _moe().causal_mask)
        # each layer routes with its own centroids, by identity: screening applies the layers
        # of `model` in any subset and order
        layers, centroid = adapter.layers(model), model.encoder.centroid
        self.centroid = {id(layer): centroid[i] for i, layer in enumerate(layers)}

    def embed(self) -> torch.Tensor:
        model = self.model
        scaled = (self.target - self.loc) / self.scale
        reprs = model.feat_proj(F.silu(model.in_proj(scaled, self.patch)), self.patch)
        return reprs + model.res_proj(scaled, self.patch)

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(
            hidden,
            self.attn_mask,
            var_id=self.variate_id,
            time_id=self.time_id,
            centroid=self.centroid[id(layer)],
        )

    def distribution(self, hidden: torch.Tensor):
        model, p, last = self.model, self.patch_size, slice(-1, None)
        params = model.param_proj(model.encoder.norm(hidden[:, last]), self.patch[:, last])
        params = torch.utils._pytree.tree_map(lambda t: t[:, :, :p], params)
        return model.distr_output.distribution(
            params, loc=self.loc[:, last, :p], scale=self.scale[:, last, :p]
        )

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        distr = draw_free(self.distribution(hidden))
        covered = min(self.patch_size, self.horizon)
        padded = future.new_zeros(future.shape[0], 1, self.patch_size)
        padded[:, 0, :covered] = future[:, :covered]
        log_prob = distr.log_prob(padded).flatten(1)[:, :covered]
        point = distr.mean.flatten(1)[:, :covered]
        return point, -log_prob.mean(dim=1)


class Moirai2Adapter(MoiraiAdapter):
    """Moirai 2.0: MoiraiAdapter's loading, pruning, saving and attention capture (its config
    names no `_target_`, so the hydra guard has nothing to refuse), with the decoder's quantile
    forecast, one-step staged pass and multi-token quantile loss. One patch size."""

    family = "moirai-2"
    module_name = "Moirai2Module"

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        return {"num_predict_token", "quantile_levels", "patch_size"} <= set(config)

    @classmethod
    def _module_class(cls) -> type[nn.Module]:
        return _moirai2().Moirai2Module

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        return (self.model.patch_size,)

    def _packer(self, model: nn.Module, context_length: int, horizon: int, patch_size: int):
        training = model.training  # Moirai2Forecast puts its module in eval mode
        forecaster = _moirai2().Moirai2Forecast(
            prediction_length=horizon,
            target_dim=1,
            feat_dynamic_real_dim=0,
            past_feat_dynamic_real_dim=0,
            context_length=context_length,
            module=model,
        )
        model.train(training)
        return forecaster

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """As Moirai-MoE's, with multi-token prediction: output k of token t is scored against
        token t + k for k = 1..num_predict_token, by `PackedQuantileMAELoss` on the series
        normalised as `Moirai2Module`'s training mode returns it (the paper's objective)."""
        packed, _, _ = self._pack(model, past, future.shape[1], model.patch_size, future)
        target, observed, sample_id, time_id, variate_id, pred_mask = packed
        preds, scaled = model(
            target, observed, sample_id, time_id, variate_id, pred_mask, training_mode=True
        )
        steps = model.num_predict_token
        # (..., (predict_token quantile patch)): output k of token t forecasts token t + k
        preds = preds.unflatten(-1, (steps, -1))
        ks = range(1, steps + 1)
        return _moirai2().packed.PackedQuantileMAELoss(list(model.quantile_levels))(
            pred=torch.cat([preds[:, :, k - 1] for k in ks], dim=1),
            target=torch.cat([_shift(scaled, k) for k in ks], dim=1),
            prediction_mask=torch.cat([_shift(pred_mask, k, fill=False) for k in ks], dim=1),
            observed_mask=torch.cat([_shift(observed, k, fill=False) for k in ks], dim=1),
            sample_id=torch.cat([_shift(sample_id, k) for k in ks], dim=1),
            variate_id=torch.cat([_shift(variate_id, k) for k in ks], dim=1),
        )

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> Moirai2Staged:
        return Moirai2Staged(self, model, past, horizon, model.patch_size)

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """Deterministic: the quantile rollout read as paths; `seed` is not needed."""
        # .to() tells the LightningModule its device, which its rollout reads
        forecaster = self._packer(model, past.shape[1], horizon, model.patch_size).to(past.device)
        with torch.no_grad():
            quantiles = forecaster(*_past_inputs(past))  # (batch, quantile, horizon)
        return quantiles_to_paths(quantiles, model.quantile_levels, num_samples)


class Moirai2Staged(_ContextPass):
    """Moirai2Module.forward over the context tokens, cut at layer boundaries; the output head
    reads the last token only: quantiles (B, Q, covered) of the first num_predict_token patches
    of the horizon, on the raw scale."""

    def __init__(self, adapter, model, past, horizon, patch_size) -> None:
        super().__init__(adapter, model, past, horizon, patch_size, _moirai2().causal_mask)

    def embed(self) -> torch.Tensor:
        scaled = (self.target - self.loc) / self.scale
        return self.model.in_proj(torch.cat([scaled, self.observed.to(torch.float32)], dim=-1))

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(hidden, self.attn_mask, var_id=self.variate_id, time_id=self.time_id)

    def distribution(self, hidden: torch.Tensor) -> torch.Tensor:
        model, last = self.model, slice(-1, None)
        preds = model.out_proj(model.encoder.norm(hidden[:, last]))
        preds = preds * self.scale[:, last] + self.loc[:, last]  # (B, 1, steps * Q * patch)
        steps, levels = model.num_predict_token, len(model.quantile_levels)
        quantiles = preds.view(-1, steps, levels, model.patch_size).transpose(1, 2)
        return quantiles.flatten(2)[..., : self.horizon]

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The median and the quantile loss of the step on the series normalised as the module
        normalises it (the loss of its training mode): the pinball loss is positively
        homogeneous, so that is the raw-scale loss divided by the window's scale."""
        quantiles = self.distribution(hidden)
        covered = quantiles.shape[-1]
        levels = torch.tensor(self.model.quantile_levels, dtype=quantiles.dtype)
        levels = levels.to(quantiles.device).view(1, -1, 1)
        error = future[:, None, :covered] - quantiles
        pinball = torch.maximum(levels * error, (levels - 1) * error).mean(dim=(1, 2))
        point = quantiles_to_paths(quantiles, self.model.quantile_levels, 1)[:, 0]
        return point, pinball / self.scale[:, -1, 0]
