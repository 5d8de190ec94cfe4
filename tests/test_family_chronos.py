"""Chronos-Bolt and Chronos-2 through chronos-forecasting's own classes: tiny random models
(d_model 32; Chronos-2 with 4 encoder blocks, Chronos-Bolt with 4 encoder and 2 decoder blocks,
layers 0-3 and 4-5, and 2 + 2 in the saved checkpoint) built with the library's config
classes, so the real code runs in milliseconds."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("chronos", reason="pip install 'autoprune[chronos]'")

from chronos.chronos2 import Chronos2Model, Chronos2Pipeline  # noqa: E402
from chronos.chronos2.config import Chronos2CoreConfig  # noqa: E402
from chronos.chronos_bolt import ChronosBoltModelForForecasting, ChronosBoltPipeline  # noqa: E402
from transformers import T5Config  # noqa: E402

from autoprune.data import Windows  # noqa: E402
from autoprune.errors import AutoPruneError, ModelLoadError  # noqa: E402
from autoprune.importance import METHODS, capture, scores  # noqa: E402
from autoprune.models import MODELS, load_adapter  # noqa: E402
from autoprune.models._base import unique_params  # noqa: E402
from autoprune.models.chronos import (  # noqa: E402
    BOLT_CHRONOS_CONFIG,
    CHRONOS2_CHRONOS_CONFIG,
    Chronos2Adapter,
    ChronosBoltAdapter,
)
from tests.conftest import family_round_trip  # noqa: E402

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
BOLT_STEPS = 8  # the tiny Bolt's prediction_length: the e2e horizon (16) needs two passes


def tiny_bolt(seed: int = 0, encoder: int = 4, decoder: int = 2) -> ChronosBoltModelForForecasting:
    chronos_config = dict(
        context_length=128,
        input_patch_size=16,
        input_patch_stride=16,
        prediction_length=BOLT_STEPS,
        quantiles=LEVELS,
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


def tiny_chronos2(seed: int = 0) -> Chronos2Model:
    chronos_config = dict(
        context_length=128,
        input_patch_size=16,
        input_patch_stride=16,
        output_patch_size=16,
        max_output_patches=4,
        quantiles=LEVELS,
        use_reg_token=True,
        use_arcsinh=True,
        time_encoding_scale=128,
    )
    config = Chronos2CoreConfig(
        d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=4, chronos_config=chronos_config
    )
    torch.manual_seed(seed)
    return Chronos2Model(config).eval()


BUILD = {"chronos-bolt": tiny_bolt, "chronos-2": tiny_chronos2}
# the saved checkpoints have 4 layers, as the e2e study's space says: Bolt's are 2 + 2
SAVED = {"chronos-bolt": lambda: tiny_bolt(encoder=2, decoder=2), "chronos-2": tiny_chronos2}
ADAPTER = {"chronos-bolt": ChronosBoltAdapter, "chronos-2": Chronos2Adapter}
LIBRARY_CLASS = {"chronos-bolt": ChronosBoltModelForForecasting, "chronos-2": Chronos2Model}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """A saved tiny checkpoint per family, written by the library's own save_pretrained."""
    dirs = {}
    for family, build in SAVED.items():
        directory = tmp_path_factory.mktemp(family)
        build().save_pretrained(str(directory))
        dirs[family] = directory
    return dirs


def series(batch: int = 5, length: int = 70, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(
        10 + rng.normal(size=(batch, length)).cumsum(axis=1), dtype=torch.float32
    )


def staged_forecast(adapter, model, past, horizon, keep):
    staged = adapter.staged(model, past, horizon, 16)
    hidden = staged.embed()
    for i in keep:
        hidden = staged.apply(adapter.layers(model)[i], hidden)
    return staged, hidden


def test_published_aliases_have_their_exact_parameter_counts():
    """Each alias's count is what the library builds from the published config (meta device:
    no memory, no download)."""
    for entry in (e for e in MODELS.values() if e.family in ADAPTER):
        shape = {k: v for k, v in entry.shape.items() if k != "patch_sizes"}
        with torch.device("meta"):
            if entry.family == "chronos-bolt":
                config = T5Config(
                    **shape, feed_forward_proj="relu", vocab_size=2, is_encoder_decoder=True,
                    chronos_config=dict(BOLT_CHRONOS_CONFIG),
                )  # fmt: skip
                model = ChronosBoltModelForForecasting(config)
            else:
                config = Chronos2CoreConfig(**shape, chronos_config=dict(CHRONOS2_CHRONOS_CONFIG))
                model = Chronos2Model(config)
        assert unique_params(model) == entry.params, entry.alias
        decoder = len(model.decoder.block) if entry.family == "chronos-bolt" else 0
        assert len(model.encoder.block) + decoder == entry.num_layers
    assert {"chronos-bolt-tiny", "chronos-bolt-base", "chronos-2"} <= set(MODELS)
    assert MODELS["chronos-bolt-tiny"].params == 8_652_672  # the hub's safetensors total


@pytest.mark.parametrize("family", ADAPTER)
def test_checkpoint_is_detected_as_its_family(family, checkpoints):
    adapter = load_adapter(str(checkpoints[family]))
    assert type(adapter) is ADAPTER[family] and adapter.family == family
    assert adapter.num_layers == 4 and adapter.patch_sizes == (16,)
    groups = (range(2), range(2, 4)) if family == "chronos-bolt" else (range(4),)
    assert adapter.groups == groups
    other = "chronos-2" if family == "chronos-bolt" else "chronos-bolt"
    config = json.loads((checkpoints[family] / "config.json").read_text())
    assert not ADAPTER[other].recognizes(config)
    assert not ADAPTER[family].recognizes({"distr_output": {}, "patch_sizes": [8]})  # Moirai


@pytest.mark.parametrize("family", ADAPTER)
def test_prune_copies_and_counts_exactly(family):
    adapter = ADAPTER[family](BUILD[family](), "test")
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    bolt = [(1, 5), (4, 5), (5,), (0, 1, 2, 3), (0, 2, 4)] if family == "chronos-bolt" else []
    for keep in [(1, 3), (0, 2), (3,), *bolt]:
        pruned = adapter.prune(keep)
        assert len(adapter.layers(pruned)) == len(keep)
        assert all(said == depth for said, depth in adapter._depths(pruned))
        assert adapter.params(keep) == unique_params(pruned)
    assert adapter.num_layers == (6 if family == "chronos-bolt" else 4)
    assert all(said == depth for said, depth in adapter._depths(adapter.model))
    after = adapter.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bolt_hands_the_relative_attention_bias_to_the_first_kept_block(tmp_path):
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")
    pruned = adapter.prune((1, 3, 4, 5))  # encoder blocks 1 and 3, both decoder blocks
    owner = pruned.encoder.block[0].layer[0].SelfAttention
    original = adapter.model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert owner.has_relative_attention_bias
    assert torch.equal(owner.relative_attention_bias.weight, original.weight)
    assert owner.relative_attention_bias.weight is not original.weight  # a copy, not shared
    assert not pruned.encoder.block[1].layer[0].SelfAttention.has_relative_attention_bias
    assert not adapter.model.encoder.block[1].layer[0].SelfAttention.has_relative_attention_bias
    assert pruned.config.num_decoder_layers == 2 and len(pruned.decoder.block) == 2


def test_bolt_prunes_decoder_blocks_and_hands_their_bias_over():
    """Decoder blocks are layers 4-5: the decoder's block-0 self-attention bias goes to its
    first kept block, both stacks' depths are set, and the cache's layer_idx is renumbered."""
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")
    assert adapter.num_layers == 6 and adapter.groups == (range(4), range(4, 6))
    assert list(adapter.layers(adapter.model))[4] is adapter.model.decoder.block[0]
    pruned = adapter.prune((1, 2, 5))
    assert len(pruned.encoder.block) == pruned.config.num_layers == 2
    assert pruned.encoder.config.num_layers == 2
    assert len(pruned.decoder.block) == pruned.config.num_decoder_layers == 1
    assert pruned.decoder.config.num_layers == 1
    kept = pruned.decoder.block[0].layer
    original = adapter.model.decoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert kept[0].SelfAttention.has_relative_attention_bias
    assert torch.equal(kept[0].SelfAttention.relative_attention_bias.weight, original.weight)
    assert kept[0].SelfAttention.layer_idx == kept[1].EncDecAttention.layer_idx == 0
    assert not adapter.model.decoder.block[1].layer[0].SelfAttention.has_relative_attention_bias
    assert adapter.model.decoder.block[1].layer[0].SelfAttention.layer_idx == 1
    # the bias goes with a stack's last kept block: params stays exact without any of them
    for keep in [(1, 2, 5), (0, 1), (4,), (2, 4, 5)]:
        assert adapter.params(keep) == unique_params(adapter.prune(keep)), keep


@pytest.mark.parametrize(
    ("family", "keep"),
    [
        ("chronos-bolt", (1, 3)),  # encoder blocks only dropped
        ("chronos-bolt", (1, 3, 5)),  # both stacks' block 0 dropped
        ("chronos-bolt", (0, 2)),  # no decoder block: the decoder is its final norm only
        ("chronos-bolt", (5,)),  # no encoder block
        ("chronos-2", (0, 2)),
    ],
)
def test_pruned_checkpoint_reloads_strictly_with_the_same_forecast(family, keep, tmp_path):
    adapter = ADAPTER[family](BUILD[family](), "test")
    pruned = adapter.prune(keep)
    adapter.save(pruned, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    encoder = [i for i in keep if i < 4]
    assert config["num_layers"] == len(encoder)
    if family == "chronos-bolt":
        assert config["num_decoder_layers"] == len(keep) - len(encoder)
    reloaded, info = LIBRARY_CLASS[family].from_pretrained(
        str(tmp_path), use_safetensors=True, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    reloaded.eval()
    past = series()
    with torch.no_grad():
        assert torch.equal(reloaded(past).quantile_preds, pruned(past).quantile_preds)
    assert ADAPTER[family].load(tmp_path).num_layers == len(keep)
    assert adapter.params(keep) == unique_params(reloaded)


def test_a_checkpoint_with_missing_weights_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_bolt().save_pretrained(str(tmp_path))
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop("encoder.block.1.layer.1.DenseReluDense.wi.weight")
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="do not match.*missing_keys"):
        ChronosBoltAdapter.load(tmp_path)


@pytest.mark.filterwarnings("ignore:We recommend keeping prediction length")
@torch.no_grad()
def test_bolt_staged_pass_is_the_pipeline_forecast_for_any_keep_set():
    """The staged pass over any subset of the full model's blocks, encoder (0-3) and decoder
    (4-5), forecasts what the pruned model's own forward and pipeline forecast, also past
    prediction_length (autoregressive)."""
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")
    past = series()
    full = adapter.forward(adapter.model, past, BOLT_STEPS, 16)
    assert torch.equal(full, adapter.model(past).quantile_preds)
    keeps = [(0, 2, 5), (1, 4), (0, 1, 2, 3), tuple(range(6)), (1, 3), (2,), (4, 5), (5,)]
    for keep in keeps:
        pruned = adapter.prune(keep)
        expected = ChronosBoltPipeline(pruned).predict(past, prediction_length=20)
        staged, hidden = staged_forecast(adapter, adapter.model, past, 20, keep)
        assert torch.allclose(staged.distribution(hidden), expected, atol=1e-5), keep
        own = pruned(past).quantile_preds
        staged, hidden = staged_forecast(adapter, adapter.model, past, BOLT_STEPS, keep)
        assert torch.allclose(staged.distribution(hidden), own, atol=1e-5), keep
    assert not torch.allclose(expected[..., :BOLT_STEPS], full, atol=1e-3)  # blocks matter


@torch.no_grad()
def test_chronos2_staged_pass_is_the_model_forecast_for_any_keep_set():
    adapter = Chronos2Adapter(tiny_chronos2(), "test")
    past = series()
    expected = Chronos2Pipeline(adapter.model).predict(list(past), prediction_length=20)
    assert torch.allclose(
        adapter.forward(adapter.model, past, 20, 16), torch.cat(expected), atol=1e-5
    )
    for keep in [(1, 3), (0,)]:
        expected = adapter.prune(keep)(past, num_output_patches=2).quantile_preds[..., :20]
        staged, hidden = staged_forecast(adapter, adapter.model, past, 20, keep)
        assert torch.allclose(staged.distribution(hidden), expected, atol=1e-5)


@pytest.mark.parametrize("family", ADAPTER)
def test_screen_loss_is_the_models_own_training_loss_per_window(family):
    """mean_and_nll's per-window loss is the model's own loss per window, averaged over the
    horizon (Chronos-Bolt's own loss sums its steps), and its point forecast is the median."""
    adapter = ADAPTER[family](BUILD[family](), "test")
    past, future = series(), series(length=16, seed=2)
    with torch.no_grad():
        if family == "chronos-bolt":
            future = future[:, :BOLT_STEPS]
            own = adapter.model(past, target=future).loss / BOLT_STEPS
        else:
            own = adapter.model(past, future_target=future).loss
        everything = range(adapter.num_layers)
        staged, hidden = staged_forecast(adapter, adapter.model, past, future.shape[1], everything)
        median, loss = staged.mean_and_nll(hidden, future)
    assert loss.shape == (5,) and torch.allclose(loss.mean(), own, rtol=1e-5)
    assert torch.equal(median, staged.distribution(hidden)[:, LEVELS.index(0.5)])


@pytest.mark.parametrize("family", ADAPTER)
def test_loss_trains_and_forecast_reads_the_quantiles(family):
    adapter = ADAPTER[family](BUILD[family](), "test")
    model = adapter.prune((0, 2, 5) if family == "chronos-bolt" else (0, 2))
    past, future = series(), series(length=16, seed=2)
    loss = adapter.loss(model, past, future, 16)
    loss.backward()
    assert math.isfinite(loss.item())
    assert model.encoder.block[1].layer[0].layer_norm.weight.grad.abs().sum() > 0
    if family == "chronos-bolt":
        assert model.decoder.block[0].layer[1].layer_norm.weight.grad.abs().sum() > 0
    paths = adapter.forecast(model, past, 16, 16, num_samples=21)
    assert paths.shape == (5, 21, 16) and torch.isfinite(paths).all()
    assert torch.equal(paths, adapter.forecast(model, past, 16, 16, num_samples=21, seed=7))
    quantiles = adapter.forward(model, past, 16, 16).sort(dim=1).values
    # path k reads level (k + 0.5) / 21: the middle path is the median quantile
    assert torch.allclose(paths[:, 10], quantiles[:, LEVELS.index(0.5)], atol=1e-5)


def test_chronos2_refuses_a_horizon_past_its_single_pass():
    adapter = Chronos2Adapter(tiny_chronos2(), "test")
    adapter.set_windows(64, 64)
    with pytest.raises(AutoPruneError, match="--horizon 65 is longer than the 64 steps"):
        adapter.set_windows(64, 65)  # what the engine calls before a study is created
    with pytest.raises(AutoPruneError, match="--horizon 65 is longer than the 64 steps"):
        adapter.forecast(adapter.model, series(), 65, 16, num_samples=10)
    with pytest.raises(AutoPruneError, match="use --horizon 64 or less"):
        adapter.loss(adapter.model, series(), series(length=65), 16)


def test_bolt_importance_capture_reads_one_pass_even_past_prediction_length():
    """Hidden states and self-attention of the windows themselves, once per block, although a
    20-step forecast runs the blocks again on extended contexts; padding stays masked. The
    decoder group's chain starts at the start token, not at the last encoder output."""
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")
    past = series()
    past[0, :30] = float("nan")  # with the 10 steps of left padding: two unobserved patches
    windows = Windows(past.numpy(), series(length=20, seed=2).numpy())
    captured = capture(adapter, adapter.model, windows, 20, 16, attention=True)
    tokens = 70 // 16 + 1 + 1  # patches (left-padded), [REG]
    assert len(captured.hidden) == 7 and captured.hidden[0].shape == (5, tokens, 32)
    assert captured.hidden[4].shape == (5, tokens, 32) and captured.hidden[5].shape == (5, 1, 32)
    assert len(captured.attention) == 6 and captured.attention[0].shape == (5, 4, tokens, tokens)
    assert captured.attention[4].shape == (5, 4, 1, 1)  # the decoder's self-attention
    assert torch.allclose(captured.attention[0].sum(-1), torch.ones(5, 4, tokens))
    assert captured.attention[0][0, :, :, :2].max() == 0 < captured.attention[0][1, :, :, :2].min()
    encoder, decoder = captured.chains()
    assert len(encoder) == 5 and encoder[-1] is captured.hidden[4]
    assert len(decoder) == 3 and decoder[1] is captured.hidden[5]
    start = adapter.model.decoder.embed_tokens(torch.zeros(5, 1, dtype=torch.long))
    assert torch.equal(decoder[0], start.detach())  # dropout is off in eval


@pytest.mark.parametrize("method", [*METHODS, "ablation"])
def test_bolt_importance_scores_every_encoder_and_decoder_block(method):
    """Every method scores all 4 + 2 layers, finite, without comparing across the groups:
    `bi` of the first decoder block is its own input (the start token) against its output."""
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")
    calibration = Windows(series().numpy(), series(length=20, seed=2).numpy())
    validation = Windows(series(seed=3).numpy(), series(length=20, seed=4).numpy())
    values = scores([method], adapter, adapter.model, calibration, validation, 20, 16)[method]
    assert values.shape == (6,) and np.isfinite(values).all()
    if method == "bi":
        c = capture(adapter, adapter.model, calibration, 20, 16)
        start = c.chains()[1][0]
        own = 1 - torch.nn.functional.cosine_similarity(start, c.hidden[5], dim=-1).mean()
        assert values[4] == pytest.approx(own.item())


def test_chronos2_importance_capture_reads_hidden_states_and_time_attention():
    adapter = Chronos2Adapter(tiny_chronos2(), "test")
    windows = Windows(series().numpy(), series(length=16, seed=2).numpy())
    captured = capture(adapter, adapter.model, windows, 16, 16, attention=True)
    tokens = 70 // 16 + 1 + 1 + 1  # patches, [REG], one future patch
    assert len(captured.hidden) == 5 and captured.hidden[0].shape == (5, tokens, 32)
    assert len(captured.attention) == 4 and captured.attention[0].shape == (5, 4, tokens, tokens)


@pytest.mark.parametrize("family", ADAPTER)
def test_missing_library_names_the_extra(family, checkpoints, monkeypatch):
    for module in ("chronos", "chronos.chronos_bolt", "chronos.chronos2"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModelLoadError, match=r"pip install 'autoprune\[chronos\]'"):
        load_adapter(str(checkpoints[family]))


@pytest.mark.parametrize("family", ADAPTER)
def test_search_export_reload_and_evaluate(
    family, checkpoints, tiny_csv, studies, tmp_path, capsys
):
    export, metadata = family_round_trip(checkpoints[family], tiny_csv, tmp_path, capsys)
    reloaded = LIBRARY_CLASS[family].from_pretrained(str(export), use_safetensors=True)
    assert len(reloaded.encoder.block) == reloaded.config.num_layers
    decoder = len(reloaded.decoder.block) if family == "chronos-bolt" else 0
    assert len(reloaded.encoder.block) + decoder == len(metadata["keep"])
    if family == "chronos-bolt":
        assert decoder == reloaded.config.num_decoder_layers
