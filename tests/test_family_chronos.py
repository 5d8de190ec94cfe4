"""Chronos-Bolt and Chronos-2 through chronos-forecasting's own classes: tiny random models
(d_model 32; Chronos-2 with 4 encoder blocks, Chronos-Bolt with 4 encoder and 2 decoder blocks,
layers 0-3 and 4-5, and 2 + 2 in the saved checkpoint) built with the library's config
classes, so the real code runs in milliseconds. Pruning, strict reloads, the staged pass against
the pipeline and the model's forward, and parameter counts are the contract every family keeps:
test_contracts_families.py; this file keeps what only Chronos has."""

from __future__ import annotations

import json
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("chronos", reason="pip install 'autoprune[chronos]'")

from chronos.chronos2 import Chronos2Model  # noqa: E402
from chronos.chronos2.config import Chronos2CoreConfig  # noqa: E402
from chronos.chronos_bolt import ChronosBoltModelForForecasting  # noqa: E402
from transformers import T5Config  # noqa: E402

from autoprune.data import Windows  # noqa: E402
from autoprune.errors import AutoPruneError, ModelLoadError  # noqa: E402
from autoprune.importance import METHODS, capture, scores  # noqa: E402
from autoprune.models import MODELS, load_adapter  # noqa: E402
from autoprune.models._base import unique_params  # noqa: E402
from autoprune.models.chronos import (  # noqa: E402
    BOLT_CHRONOS_CONFIG,
    CHRONOS2_CHRONOS_CONFIG,
    BoltStaged,
    Chronos2Adapter,
    ChronosBoltAdapter,
)
from autoprune.screen import screen  # noqa: E402
from tests._families import (  # noqa: E402
    BOLT_STEPS,
    CHRONOS_LEVELS,
    chronos_series,
    tiny_bolt,
    tiny_chronos2,
)
from tests.conftest import family_round_trip  # noqa: E402

LEVELS = CHRONOS_LEVELS
series = chronos_series

ADAPTER = {"chronos-bolt": ChronosBoltAdapter, "chronos-2": Chronos2Adapter}
BUILD = {"chronos-bolt": tiny_bolt, "chronos-2": tiny_chronos2}
LIBRARY_CLASS = {"chronos-bolt": ChronosBoltModelForForecasting, "chronos-2": Chronos2Model}


@pytest.fixture(scope="module")
def checkpoints(family_checkpoint) -> dict:
    """A saved tiny checkpoint per family, written by the library's own save_pretrained (the
    Bolt's with 2 encoder and 2 decoder blocks: 4 layers, as the e2e study's space says)."""
    return {family: family_checkpoint(family) for family in ADAPTER}


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
def test_prune_sets_the_depth_of_each_stack(family):
    """Each T5 stack's config says its own depth, and the model's config both: what the
    library's save_pretrained writes. (Copies, untouched original, counts, reloads:
    test_contracts_families.)"""
    adapter = ADAPTER[family](BUILD[family](), "test")
    bolt = [(1, 5), (4, 5), (5,), (0, 1, 2, 3), (0, 2, 4)] if family == "chronos-bolt" else []
    for keep in [(1, 3), (0, 2), (3,), *bolt]:
        pruned = adapter.prune(keep)
        assert len(adapter.layers(pruned)) == len(keep)
        assert all(said == depth for said, depth in adapter._depths(pruned)), keep
        if family == "chronos-bolt":  # each T5 stack holds its own copy of the config
            for stack in (pruned.encoder, pruned.decoder):
                assert stack.config.num_layers == len(stack.block), keep
    assert all(said == depth for said, depth in adapter._depths(adapter.model))


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
    # (keep sets (1, 2, 5), (0, 1), (4,), (2, 4, 5) in test_contracts_families)


def test_a_checkpoint_with_missing_weights_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_bolt().save_pretrained(str(tmp_path))
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop("encoder.block.1.layer.1.DenseReluDense.wi.weight")
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="do not match.*missing_keys"):
        ChronosBoltAdapter.load(tmp_path)


@torch.no_grad()
def test_bolt_forward_is_bit_identical_to_the_models_own():
    """Within prediction_length the full model's staged pass is the model's forward to the
    bit (any keep set, and the pipeline past one pass, within 1e-5: test_contracts_families)."""
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")
    past = series()
    full = adapter.forward(adapter.model, past, BOLT_STEPS, 16)
    assert torch.equal(full, adapter.model(past).quantile_preds)


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


def test_bolt_screen_scores_the_first_pass_only(monkeypatch):
    """Past prediction_length the zero-shot screen (and a rung, which is the same measure)
    scores the first pass's steps: what a screen of those steps alone gives, without the
    pipeline's continuation, which runs every kept block again for each quantile path."""
    adapter = ChronosBoltAdapter(tiny_bolt(), "test")  # encoder blocks 0-3, decoder 4-5
    past, future = series().numpy(), series(length=20, seed=2).numpy()
    keep_sets = [(0, 4), (1, 2, 5), (0, 1, 2, 3, 4, 5)]
    first = Windows(past, future[:, :BOLT_STEPS])
    one_pass = screen(adapter, adapter.model, first, BOLT_STEPS, 16, 1, keep_sets)

    def continued(*args):
        raise AssertionError("the screen continued past the first pass")

    monkeypatch.setattr(BoltStaged, "_continue", continued)
    assert adapter.screen_steps(20) == BOLT_STEPS and adapter.screen_steps(5) == 5
    assert screen(adapter, adapter.model, Windows(past, future), 20, 16, 1, keep_sets) == one_pass


def test_bolt_latency_profile_costs_encoder_and_decoder_blocks_apart(monkeypatch):
    """An encoder block reads every context patch, a decoder block one token: a profile with one
    per-layer cost gave a keep set of decoder blocks the latency of as many encoder blocks (on a
    pretrained tiny Bolt, measured: 89 ms and 14 ms a block, fitted as 51 ms each, R2 0.88;
    studies/bench/2026-12-07/bolt-62/latency-fit-etth1.json).
    Timings are replaced by a known cost so the fit is checked exactly."""
    import autoprune.objective as objective

    def forward_ms(ctx, model):
        return 2.0 + 3.0 * len(model.encoder.block) + 0.5 * len(model.decoder.block)

    monkeypatch.setattr(objective, "_forward_ms", forward_ms)
    adapter = ChronosBoltAdapter(tiny_bolt(), "tiny")  # encoder blocks 0-3, decoder 4-5
    ctx = SimpleNamespace(
        adapter=adapter, device=torch.device("cpu"), setting=SimpleNamespace(context_length=64)
    )
    profile = json.loads(json.dumps(objective.fit_latency_profile(ctx, rounds=2)))  # as stored
    assert profile["groups"] == [[0, 4], [4, 6]]
    assert profile["fixed_ms"] == pytest.approx(2.0)
    assert profile["per_layer_ms"] == pytest.approx([3.0, 0.5])
    assert profile["r2"] == pytest.approx(1.0)
    assert objective.predict_latency(profile, [0, 1]) == pytest.approx(8.0)
    assert objective.predict_latency(profile, [4, 5]) == pytest.approx(3.0)
    assert objective.predict_latency(profile, range(6)) == pytest.approx(15.0)


def test_a_stack_of_one_block_is_timed_without_it_too(monkeypatch):
    """A Bolt pruned to one decoder block (and searched again): timed only with it, that
    block's cost could not be told from the fixed cost."""
    import autoprune.objective as objective

    def forward_ms(ctx, model):
        return 2.0 + 3.0 * len(model.encoder.block) + 0.5 * len(model.decoder.block)

    monkeypatch.setattr(objective, "_forward_ms", forward_ms)
    adapter = ChronosBoltAdapter(tiny_bolt(decoder=1), "tiny")  # encoder blocks 0-3, decoder 4
    ctx = SimpleNamespace(
        adapter=adapter, device=torch.device("cpu"), setting=SimpleNamespace(context_length=64)
    )
    profile = objective.fit_latency_profile(ctx, rounds=2)
    assert [4, 0] in [point[:2] for point in profile["points"]]  # 4 encoder blocks, no decoder
    assert profile["fixed_ms"] == pytest.approx(2.0)
    assert profile["per_layer_ms"] == pytest.approx([3.0, 0.5])


def test_one_group_profile_predicts_as_profiles_stored_before(monkeypatch):
    """A model of one layer group keeps the one per-layer cost, and a profile stored by a study
    before per-group costs (no `groups`) predicts as it did: a resumed study's latencies stay."""
    import autoprune.objective as objective

    monkeypatch.setattr(
        objective, "_forward_ms", lambda ctx, model: 1.0 + 2.0 * len(model.encoder.block)
    )
    ctx = SimpleNamespace(
        adapter=Chronos2Adapter(tiny_chronos2(), "tiny"),
        device=torch.device("cpu"),
        setting=SimpleNamespace(context_length=64),
    )
    profile = objective.fit_latency_profile(ctx, rounds=2)
    assert "groups" not in profile and profile["per_layer_ms"] == pytest.approx(2.0)
    assert [p[0] for p in profile["points"]] == [1, 2, 3, 4]
    stored = {"fixed_ms": 4.0, "per_layer_ms": 0.4, "r2": 1.0}
    assert objective.predict_latency(stored, [0, 2, 5]) == pytest.approx(5.2)


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


def test_bolt_keeps_its_last_decoder_block_unless_told_otherwise(
    checkpoints, tiny_csv, studies, tmp_path
):
    """Chronos-Bolt's default space keeps the block that feeds its quantile head (no keep set
    without it reached a true front, docs/search-efficiency.md), as each shipped Bolt file does
    for its depth; Chronos-2 keeps none. A space file decides for itself, and a study resumed
    after the default changed keeps the space it was created with."""
    from autoprune.search.options import SearchOptions, prepare
    from autoprune.space import space_for_model
    from autoprune.study import SETTINGS_ATTR

    for entry in (e for e in MODELS.values() if e.family == "chronos-bolt"):
        shipped = space_for_model(entry.alias, entry.num_layers)
        assert shipped.always_keep == (entry.num_layers - 1,), entry.alias
    assert load_adapter(str(checkpoints["chronos-2"])).always_keep == ()

    bolt = str(checkpoints["chronos-bolt"])
    opts = dict(model=bolt, dataset=str(tiny_csv), device="cpu", horizon=16, context_length=64)
    prep = prepare(SearchOptions(study="b1", **opts))
    space = prep.ctx.space
    assert space.always_keep == (3,) and prep.settings["space"]["always_keep"] == [3]
    assert space.size == 7  # the keep sets of 1-3 of the 4 layers that keep layer 3
    whole = tmp_path / "whole.toml"
    whole.write_text('model = "bolt"\nnum_layers = 4\nalways_keep = []\n')
    assert space_for_model(bolt, 4, whole, (3,)).always_keep == ()  # the file decides
    older = {**prep.settings, "space": {**prep.settings["space"], "always_keep": []}}
    prep.study.set_user_attr(SETTINGS_ATTR, older)  # as created before Bolt kept the block
    assert prepare(SearchOptions(study="b1", **opts)).ctx.space.always_keep == ()
