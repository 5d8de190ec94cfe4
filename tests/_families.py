"""Tiny random models of every family, built offline with each family's own library classes,
and the windows and library calls their tests share. Used by the contract suite
(test_contracts_families.py) and by each family's own test file; every import of a family's
library is inside the function that needs it, so a missing library skips that family only.

Moirai's tiny module is conftest.build_tiny_module (many other test files use it)."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch

# --- Moirai (uni2ts) --------------------------------------------------------------------------


def moirai_past(batch=4, context=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(context, dtype=torch.float32)
    return 5 + torch.sin(t / 3) + 0.1 * torch.randn(batch, context, generator=g)


# --- Moirai-MoE and Moirai 2.0 (uni2ts >= 2.0.0) ---------------------------------------------

MOIRAI2_PATCH = 8


def moirai_head():
    """The published Moirai-MoE checkpoints' mixture head."""
    from uni2ts.distribution import (
        LogNormalOutput,
        MixtureOutput,
        NegativeBinomialOutput,
        NormalFixedScaleOutput,
        StudentTOutput,
    )

    components = [StudentTOutput(), NormalFixedScaleOutput(scale=1e-3)]
    return MixtureOutput(components=[*components, NegativeBinomialOutput(), LogNormalOutput()])


def tiny_moe(seed=0, **overrides):
    from uni2ts.model.moirai_moe import MoiraiMoEModule

    torch.manual_seed(seed)
    kwargs = dict(d_model=64, d_ff=32, num_layers=4, patch_sizes=(MOIRAI2_PATCH,), max_seq_len=128)
    model = MoiraiMoEModule(
        distr_output=moirai_head(), attn_dropout_p=0.0, dropout_p=0.0, **{**kwargs, **overrides}
    )
    model.encoder.centroid.normal_()  # uni2ts leaves the buffer uninitialised (torch.empty)
    return model.eval()


def tiny_moirai2(seed=0, **overrides):
    from uni2ts.model.moirai2 import Moirai2Module

    torch.manual_seed(seed)
    kwargs = dict(d_model=64, d_ff=64, num_layers=4, patch_size=MOIRAI2_PATCH, num_predict_token=2)
    model = Moirai2Module(
        max_seq_len=128, attn_dropout_p=0.0, dropout_p=0.0, **{**kwargs, **overrides}
    )
    return model.eval()


def moirai2_windows(batch=3, context=40, horizon=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    series = torch.randn(batch, context + horizon, generator=g).cumsum(1) + 5
    return series[:, :context], series[:, context:]


def moe_first_step(adapter, model, past, horizon):
    """MoiraiMoEModule.forward over the packed window, as MoiraiMoEForecast runs it: the
    distribution of its last context token (the one the forecast samples the first patch from)."""
    (target, observed, sample_id, time_id, variate_id, mask), patch, first = adapter._pack(
        model, past, horizon, MOIRAI2_PATCH
    )
    with torch.no_grad():
        distr = model(target, observed, sample_id, time_id, variate_id, mask, patch)
    return distr, first - 1


# --- Chronos-Bolt and Chronos-2 ---------------------------------------------------------------

CHRONOS_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
BOLT_STEPS = 8  # the tiny Bolt's prediction_length: the e2e horizon (16) needs two passes


def tiny_bolt(seed: int = 0, encoder: int = 4, decoder: int = 2):
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config

    chronos_config = dict(
        context_length=128,
        input_patch_size=16,
        input_patch_stride=16,
        prediction_length=BOLT_STEPS,
        quantiles=CHRONOS_LEVELS,
        use_reg_token=True,
    )
    config = T5Config(
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_heads=4,
        num_layers=encoder,
        num_decoder_layers=decoder,
        feed_forward_proj="relu",
        vocab_size=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        is_encoder_decoder=True,
        initializer_factor=1.0,  # large enough that every block changes the forecast
        chronos_config=chronos_config,
    )
    torch.manual_seed(seed)
    return ChronosBoltModelForForecasting(config).eval()


def tiny_chronos2(seed: int = 0):
    from chronos.chronos2 import Chronos2Model
    from chronos.chronos2.config import Chronos2CoreConfig

    chronos_config = dict(
        context_length=128,
        input_patch_size=16,
        input_patch_stride=16,
        output_patch_size=16,
        max_output_patches=4,
        quantiles=CHRONOS_LEVELS,
        use_reg_token=True,
        use_arcsinh=True,
        time_encoding_scale=128,
    )
    config = Chronos2CoreConfig(
        d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=4, chronos_config=chronos_config
    )
    torch.manual_seed(seed)
    return Chronos2Model(config).eval()


def chronos_series(batch: int = 5, length: int = 70, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(
        10 + rng.normal(size=(batch, length)).cumsum(axis=1), dtype=torch.float32
    )


# --- TimesFM 2.5 (transformers' port) ---------------------------------------------------------

TIMESFM_TINY = dict(
    patch_length=8,
    context_length=128,
    horizon_length=16,
    num_hidden_layers=4,
    hidden_size=32,
    intermediate_size=32,
    head_dim=8,
    num_attention_heads=4,
    num_key_value_heads=4,
    output_quantile_len=24,
    max_position_embeddings=128,
)


def tiny_timesfm(**overrides):
    from transformers import TimesFm2_5Config, TimesFm2_5ModelForPrediction

    torch.manual_seed(0)
    config = TimesFm2_5Config(**{**TIMESFM_TINY, **overrides})
    return TimesFm2_5ModelForPrediction(config).eval()


def timesfm_windows(batch=3, context=50, horizon=16, offset=0.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    series = torch.randn(batch, context + horizon, generator=g).cumsum(1) + offset
    return series[:, :context], series[:, context:]


def port_forecast(model, past):
    """The port's own forward, with the context padded to whole patches as the adapter does."""
    patch = model.config.patch_length
    length = math.ceil(past.shape[1] / patch) * patch
    with torch.no_grad():
        return model(past_values=past, forecast_context_len=length)


# --- MOMENT (momentfm) ------------------------------------------------------------------------

MOMENT_HORIZON = 16
MOMENT_T5 = dict(
    d_model=32,
    d_ff=64,
    d_kv=8,
    num_heads=4,
    num_layers=4,
    num_decoder_layers=4,
    feed_forward_proj="gated-gelu",
    vocab_size=8,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.1,
    layer_norm_epsilon=1e-6,
    model_type="t5",
    is_encoder_decoder=True,
)


def moment_config() -> dict:
    """A MOMENT-1 style config (T5 config inline, d_model read from it), shrunk."""
    from autoprune.models.moment import published_config

    config = published_config("small")
    config["t5_config"] = dict(MOMENT_T5)
    return config


def build_moment(config: dict):
    from momentfm import MOMENTPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' deprecation of gradient checkpointing
        return MOMENTPipeline(config, model_kwargs={})


def moment_past(batch=4, context=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(context, dtype=torch.float32)
    return 5 + torch.sin(t / 3) + 0.1 * torch.randn(batch, context, generator=g)


def momentfm_forecast(model, past):
    """momentfm's own forecast of `past`, given the input MOMENT expects: the last 512 steps,
    left-padded with zeros that the input mask marks as missing."""
    past = past[:, -512:]
    pad = 512 - past.shape[1]
    x = torch.cat([torch.zeros(past.shape[0], pad), past], dim=1)[:, None]
    mask = torch.cat([torch.zeros(past.shape[0], pad), torch.ones_like(past)], dim=1)
    with torch.no_grad():
        return model(x_enc=x, input_mask=mask).forecast[:, 0]


def momentfm_reload(directory):
    """MOMENTPipeline.from_pretrained, strict, without momentfm's prints and warnings."""
    from momentfm import MOMENTPipeline

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MOMENTPipeline.from_pretrained(str(directory), strict=True)


# --- GPT4TS (a GPT-2 inside autoprune's forecaster) -------------------------------------------

GPT4TS_CONTEXT, GPT4TS_HORIZON, GPT4TS_LAYERS = 64, 16, 4


def gpt2_config():
    from transformers import GPT2Config

    return GPT2Config(
        n_embd=32, n_head=2, n_layer=GPT4TS_LAYERS, n_positions=64, vocab_size=16,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip


def tiny_gpt4ts(seed: int = 0):
    """A GPT4TS with random weights everywhere, the head included (as if trained)."""
    from transformers import GPT2Model

    from autoprune.models.gpt4ts import new_gpt4ts

    torch.manual_seed(seed)
    model = new_gpt4ts(GPT2Model(gpt2_config()), GPT4TS_CONTEXT, GPT4TS_HORIZON)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    return model.eval()


def gpt4ts_windows(batch: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(GPT4TS_CONTEXT + GPT4TS_HORIZON, dtype=torch.float32)
    phase = torch.rand(batch, 1, generator=generator) * 6
    series = 20 + 5 * torch.sin(t / 4 + phase) + torch.randn(batch, t.numel(), generator=generator)
    return series[:, :GPT4TS_CONTEXT], series[:, GPT4TS_CONTEXT:]


# --- saved checkpoints ------------------------------------------------------------------------


def save_checkpoint(family: str, directory: Path) -> None:
    """A tiny random checkpoint of `family` in `directory`, written as its own library (or,
    for GPT4TS, autoprune's adapter) saves it. Chronos-Bolt's has 2 encoder and 2 decoder
    blocks: 4 layers, as the end-to-end studies' space says."""
    if family == "moirai-moe":
        tiny_moe().save_pretrained(str(directory))
    elif family == "moirai-2":
        tiny_moirai2().save_pretrained(str(directory))
    elif family == "chronos-bolt":
        tiny_bolt(encoder=2, decoder=2).save_pretrained(str(directory))
    elif family == "chronos-2":
        tiny_chronos2().save_pretrained(str(directory))
    elif family == "timesfm":
        tiny_timesfm().save_pretrained(str(directory))
    elif family == "moment":
        # a T5 config that momentfm must not look up on the hub (there is none offline)
        torch.manual_seed(0)
        model = build_moment(moment_config())
        with contextlib.redirect_stdout(io.StringIO()):
            model.save_pretrained(str(directory))
    elif family == "gpt4ts":
        from autoprune.models.gpt4ts import GPT4TSAdapter

        model = tiny_gpt4ts()
        GPT4TSAdapter(model, "test").save(model, directory)
    else:
        raise ValueError(f"no tiny checkpoint for family {family!r}")
