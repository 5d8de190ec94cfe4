"""GPT4TS: a tiny GPT-2 (d_model 32, 4 blocks) inside autoprune's GPT4TS forecaster, through
transformers' own GPT2Model: detection, strict loading, the screen's loss and training, attention
probabilities, a plain GPT-2 getting a new seeded head, window refusals, and a whole study.
Pruning, checkpoints GPT2Model reloads, the staged forward and parameter counts are the contract
every family keeps: test_contracts_families.py."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("transformers", reason="pip install 'autoprune[gpt4ts]'")

from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model  # noqa: E402

from autoprune.errors import AutoPruneError, ModelLoadError  # noqa: E402
from autoprune.models import MODELS, load_adapter, unique_params  # noqa: E402
from autoprune.models.gpt4ts import (  # noqa: E402
    ALIASES,
    HEAD_PREFIX,
    GPT4TSAdapter,
    new_gpt4ts,
)
from autoprune.space import space_for_model  # noqa: E402
from tests._families import (  # noqa: E402
    GPT4TS_CONTEXT,
    GPT4TS_HORIZON,
    GPT4TS_LAYERS,
    gpt2_config,
    gpt4ts_windows,
    tiny_gpt4ts,
)
from tests.conftest import family_round_trip  # noqa: E402

CONTEXT, HORIZON, LAYERS = GPT4TS_CONTEXT, GPT4TS_HORIZON, GPT4TS_LAYERS
tiny_config, windows = gpt2_config, gpt4ts_windows


@pytest.fixture(scope="module")
def gpt4ts_dir(family_checkpoint):
    return family_checkpoint("gpt4ts")


@pytest.fixture(scope="module")
def adapter(gpt4ts_dir) -> GPT4TSAdapter:
    return load_adapter(str(gpt4ts_dir))


def test_checkpoint_is_detected_and_loads_every_tensor(adapter, gpt4ts_dir, tmp_path):
    config = json.loads((gpt4ts_dir / "config.json").read_text())
    assert config["autoprune_family"] == "gpt4ts" and config["model_type"] == "gpt2"
    assert config["gpt4ts"] == dict(context_length=64, horizon=16, patch_len=16, stride=8)
    assert isinstance(adapter, GPT4TSAdapter) and not adapter.new_head
    assert adapter.num_layers == LAYERS and adapter.patch_sizes == (16,)
    saved = tiny_gpt4ts().state_dict()
    assert all(torch.equal(t, saved[k]) for k, t in adapter.model.state_dict().items())

    # loading is strict: a checkpoint missing one tensor is refused, not filled with noise
    (tmp_path / "config.json").write_text((gpt4ts_dir / "config.json").read_text())
    tensors = load_file(gpt4ts_dir / "model.safetensors")
    del tensors[HEAD_PREFIX + "head.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="does not load as a GPT4TS.*head.weight"):
        load_adapter(str(tmp_path))


def test_forecast_is_the_point_forecast_and_loss_trains(adapter):
    """One path, the point forecast; the screen's loss is the MSE of the normalised series;
    re-alignment lowers it. (The staged pass against GPT4TS.forward, pruned and saved models
    reloaded by GPT2Model: test_contracts_families.)"""
    past, future = windows()
    model = adapter.prune(range(LAYERS))
    with torch.no_grad():
        forecast = adapter.forecast(model, past, HORIZON, 16, num_samples=100)
        assert forecast.shape == (6, 1, HORIZON) and torch.isfinite(forecast).all()
        assert torch.allclose(forecast[:, 0], model(past), atol=1e-5)
        staged = adapter.staged(model, past, HORIZON, 16)
        hidden = staged.embed()
        for layer in adapter.layers(model):
            hidden = staged.apply(layer, hidden)
        mean, mse = staged.mean_and_nll(hidden, future)
    assert torch.allclose(mean, forecast[:, 0], atol=1e-5) and mse.shape == (6,)
    scale = model.normalise(past)[2]
    assert torch.allclose(mse, (((mean - future) / scale) ** 2).mean(dim=1), rtol=1e-4)

    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(15):
        loss = adapter.loss(model, past, future, 16)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert (
        model.head.weight.grad is not None
        and model.backbone.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    )


def test_attention_probabilities_are_gpt2s_own(adapter):
    past, _ = windows()
    probs: list[torch.Tensor] = []
    with torch.no_grad(), adapter.attention_probabilities(probs):
        adapter.forward(adapter.model, past, HORIZON, 16)
    eager = adapter.prune(range(LAYERS))
    eager.backbone.set_attn_implementation("eager")
    with torch.no_grad():
        embeds = eager.patch_embedding(eager.patches(eager.normalise(past)[0]))
        expected = eager.backbone(inputs_embeds=embeds, output_attentions=True).attentions
    assert len(probs) == LAYERS
    for got, want in zip(probs, expected, strict=True):
        assert got.shape == (6, 2, 8, 8) and torch.allclose(got, want, atol=1e-6)
    assert adapter.forward(adapter.model, past, HORIZON, 16).shape == (6, HORIZON)  # hook gone


def test_plain_gpt2_gets_its_pretrained_blocks_and_a_new_seeded_head(tmp_path):
    torch.manual_seed(3)
    lm = GPT2LMHeadModel(tiny_config())
    lm.save_pretrained(tmp_path)  # a hub GPT-2: architectures GPT2LMHeadModel, model_type gpt2
    state = torch.random.get_rng_state()
    adapter = load_adapter(str(tmp_path))
    assert torch.equal(torch.random.get_rng_state(), state)  # the seeded head leaves it alone
    assert isinstance(adapter, GPT4TSAdapter) and adapter.new_head
    blocks = lm.transformer.state_dict()
    assert all(torch.equal(t, blocks[k]) for k, t in adapter.model.backbone.state_dict().items())
    # built for the default window (512 -> 96: 64 patches); the same head on every load
    assert adapter.model.head.weight.shape == (96, 64 * 32)
    again = load_adapter(str(tmp_path))
    assert torch.equal(again.model.head.weight, adapter.model.head.weight)

    full = adapter.params()
    adapter.set_windows(CONTEXT, HORIZON)
    direct = GPT4TSAdapter.load(tmp_path, context_length=CONTEXT, horizon=HORIZON)
    assert adapter.model.head.weight.shape == (HORIZON, 8 * 32)
    assert torch.equal(adapter.model.head.weight, direct.model.head.weight)
    assert adapter.params() == unique_params(direct.model) < full
    past, _ = windows()
    assert adapter.forecast(adapter.prune((0,)), past, HORIZON, 16, 1).shape == (6, 1, HORIZON)
    with pytest.raises(AutoPruneError, match="at most"):
        adapter.set_windows(4096, HORIZON)  # more patches than GPT-2 has positions


def test_a_trained_head_refuses_other_windows(adapter):
    with pytest.raises(AutoPruneError, match="horizon 16 from context 64 only"):
        adapter.set_windows(128, HORIZON)
    past, _ = windows()
    with pytest.raises(AutoPruneError, match="--context-length 64 --horizon 16"):
        adapter.forecast(adapter.model, past[:, :48], HORIZON, 16, 1)
    with pytest.raises(AutoPruneError, match="context 64 and horizon 24 were asked for"):
        adapter.loss(adapter.model, past, torch.zeros(6, 24), 16)


def test_without_transformers_the_error_names_the_extra(gpt4ts_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelLoadError, match=r"pip install 'autoprune\[gpt4ts\]'"):
        load_adapter(str(gpt4ts_dir))


def test_alias_parameter_count_is_gpt2_small_with_the_gpt4ts_head():
    (entry,) = ALIASES
    assert MODELS["gpt4ts-gpt2"] == entry and entry.source == "openai-community/gpt2"
    with torch.device("meta"):  # GPT2Config() is GPT-2 small, as openai-community/gpt2 publishes
        model = new_gpt4ts(GPT2Model(GPT2Config()), 512, 96)
    assert unique_params(model) == entry.params == 129_171_552
    assert len(model.backbone.h) == entry.num_layers == space_for_model(entry.alias, 12).num_layers


def test_search_export_reload_and_evaluate(gpt4ts_dir, tiny_csv, studies, tmp_path, capsys):
    export, metadata = family_round_trip(gpt4ts_dir, tiny_csv, tmp_path, capsys, num_samples=1)
    backbone, info = GPT2Model.from_pretrained(export, output_loading_info=True)
    assert not info["missing_keys"] and backbone.config.n_layer == len(metadata["keep"])
