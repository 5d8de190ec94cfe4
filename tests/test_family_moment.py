"""MOMENT through momentfm 0.1.4 (installed with --no-deps next to transformers 5): a tiny
random MOMENTPipeline built and loaded offline, pruned, saved, reloaded by momentfm itself, and
searched end to end."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import sys
import warnings

import pytest
import torch

pytest.importorskip("momentfm", reason="pip install 'autoprune[moment]'")

from momentfm import MOMENTPipeline  # noqa: E402

from autoprune.cli import main  # noqa: E402
from autoprune.errors import AutoPruneError, ModelLoadError  # noqa: E402
from autoprune.models import MODELS, load_adapter  # noqa: E402
from autoprune.models.moment import (  # noqa: E402
    DEFAULT_HORIZON,
    MomentAdapter,
    published_config,
)
from autoprune.study import load_study, trained_trials  # noqa: E402
from tests.conftest import family_round_trip

HORIZON = 16
TINY_T5 = dict(
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


def tiny_config() -> dict:
    """A MOMENT-1 style config (T5 config inline, d_model read from it), shrunk."""
    config = published_config("small")
    config["t5_config"] = dict(TINY_T5)
    return config


def build(config: dict) -> MOMENTPipeline:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' deprecation of gradient checkpointing
        return MOMENTPipeline(config, model_kwargs={})


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random tiny MOMENTPipeline saved by momentfm's own save_pretrained, with a T5 config
    that momentfm must not look up on the hub (there is none offline)."""
    directory = tmp_path_factory.mktemp("tiny-moment")
    torch.manual_seed(0)
    model = build(tiny_config())
    with contextlib.redirect_stdout(io.StringIO()):
        model.save_pretrained(str(directory))
    return directory


@pytest.fixture
def adapter(tiny_dir, monkeypatch):
    from transformers import T5Config

    def no_hub(*args, **kwargs):
        raise AssertionError("MOMENT asked the hub for a T5 config")

    monkeypatch.setattr(T5Config, "from_pretrained", no_hub)
    return load_adapter(str(tiny_dir))


def _past(batch=4, context=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(context, dtype=torch.float32)
    return 5 + torch.sin(t / 3) + 0.1 * torch.randn(batch, context, generator=g)


def _library(model, past):
    """momentfm's own forecast of `past`, given the input MOMENT expects: the last 512 steps,
    left-padded with zeros that the input mask marks as missing."""
    past = past[:, -512:]
    pad = 512 - past.shape[1]
    x = torch.cat([torch.zeros(past.shape[0], pad), past], dim=1)[:, None]
    mask = torch.cat([torch.zeros(past.shape[0], pad), torch.ones_like(past)], dim=1)
    with torch.no_grad():
        return model(x_enc=x, input_mask=mask).forecast[:, 0]


def _forecast(adapter, model, past, horizon=HORIZON):
    with torch.no_grad():
        return adapter.forecast(model, past, horizon, 8, num_samples=7)


def test_loads_offline_as_moment_with_a_seeded_forecasting_head(adapter, tiny_dir):
    assert isinstance(adapter, MomentAdapter)
    assert adapter.num_layers == 4 and adapter.patch_sizes == (8,)
    assert adapter.model.head.linear.out_features == DEFAULT_HORIZON
    # every parameter trains during re-alignment (momentfm freezes embedder and encoder)
    assert all(p.requires_grad for p in adapter.model.parameters())
    # the same head whatever the global RNG (so in every process): it comes from a fixed seed
    torch.manual_seed(123)
    again = load_adapter(str(tiny_dir))
    assert torch.equal(again.model.head.linear.weight, adapter.model.head.linear.weight)
    assert not MomentAdapter.recognizes({"distr_output": {}, "patch_sizes": [8]})


def test_the_published_sizes_have_the_listed_parameter_counts():
    for size in ("small", "base", "large"):
        entry = MODELS[f"moment-1-{size}"]
        assert entry.family == "moment" and entry.source == f"AutonLab/MOMENT-1-{size}"
        with torch.device("meta"):
            model = build(published_config(size))
        assert sum(p.numel() for p in model.parameters()) == entry.params
        assert len(model.encoder.block) == entry.num_layers


def test_prune_leaves_the_loaded_model_untouched_and_counts_exactly(adapter):
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    pruned = adapter.prune([1, 3])
    assert len(pruned.encoder.block) == 2 and len(adapter.model.encoder.block) == 4
    assert adapter.model._hub_mixin_config["t5_config"]["num_layers"] == 4
    with torch.no_grad():
        for p in pruned.parameters():
            p.add_(1.0)
    for key, value in adapter.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    for horizon in (DEFAULT_HORIZON, HORIZON):
        adapter.set_windows(512, horizon)
        assert adapter.params() == sum(p.numel() for p in adapter.model.parameters())
        for keep in ((0, 2), (1, 3), (3,), (0, 1, 2, 3)):
            model = adapter.prune(keep)
            assert adapter.params(keep) == sum(p.numel() for p in model.parameters()), keep


def test_the_first_kept_block_takes_over_the_position_bias(adapter):
    """T5 computes the relative-position bias in block 0 only; without it a pruned model would
    see no positions. The zero-shot screen (subsets of the loaded model's blocks) agrees."""
    past = _past()
    bias = adapter.model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
    pruned = adapter.prune((1, 3))
    owner = pruned.encoder.block[0].layer[0].SelfAttention
    assert owner.has_relative_attention_bias
    assert torch.equal(owner.relative_attention_bias.weight, bias.weight)
    assert not pruned.encoder.block[1].layer[0].SelfAttention.has_relative_attention_bias
    forecast = _forecast(adapter, pruned, past)[:, 0]

    staged = adapter.staged(adapter.model, past, HORIZON, 8)
    hidden = staged.embed()
    for i in (1, 3):
        hidden = staged.apply(adapter.model.encoder.block[i], hidden)
    screened, loss = staged.mean_and_nll(hidden, torch.zeros(4, HORIZON))
    torch.testing.assert_close(screened, forecast, atol=1e-5, rtol=0)
    assert loss.shape == (4,)

    blind = copy.deepcopy(pruned)
    blind.encoder.block[0].layer[0].SelfAttention.has_relative_attention_bias = False
    assert not torch.allclose(_library(blind, past), forecast, atol=1e-3)


@pytest.mark.parametrize("context", [100, 512, 700])
def test_staged_forward_is_momentfms_own(adapter, context):
    past = _past(context=context)
    for model in (adapter.model, adapter.prune((0, 2))):
        ours = _forecast(adapter, model, past)
        assert ours.shape == (4, 1, HORIZON) and torch.isfinite(ours).all()
        torch.testing.assert_close(ours[:, 0], _library(model, past), atol=1e-5, rtol=0)
    if context > 512:  # only the last 512 steps are read
        torch.testing.assert_close(ours, _forecast(adapter, model, past[:, -512:]))


def test_save_and_reload_with_momentfm_strictly(adapter, tmp_path):
    adapter.set_windows(512, HORIZON)
    pruned = adapter.prune((1, 2))
    adapter.save(pruned, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["t5_config"]["num_layers"] == 2
    assert (config["task_name"], config["forecast_horizon"]) == ("forecasting", HORIZON)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded = MOMENTPipeline.from_pretrained(str(tmp_path), strict=True)
    assert len(reloaded.encoder.block) == 2
    past = _past()
    assert torch.equal(_library(reloaded, past), _library(pruned, past))
    # the pruned model's own save_pretrained (without the adapter) says its depth too
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned.save_pretrained(str(tmp_path / "own"))
        own = MOMENTPipeline.from_pretrained(str(tmp_path / "own"), strict=True)
    assert torch.equal(_library(own, past), _library(pruned, past))
    # autoprune reloads it too, trained head and all, and keeps it to its horizon
    again = load_adapter(str(tmp_path))
    assert again.num_layers == 2
    assert torch.equal(_forecast(again, again.model, past), _forecast(adapter, pruned, past))
    with pytest.raises(AutoPruneError, match="trained for horizon 16"):
        _forecast(again, again.model, past, horizon=24)


def test_loss_trains_head_and_kept_blocks(adapter):
    past, future = _past(), _past(context=HORIZON, seed=1)
    adapter.set_windows(512, HORIZON)
    model = adapter.prune((0, 3)).train()
    loss = adapter.loss(model, past, future, 8)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name in ("head.linear.weight", "encoder.block.1.layer.0.SelfAttention.q.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    # without dropout, the training loss is the mean of the screen's per-window loss
    model.eval()
    staged = adapter.staged(model, past, HORIZON, 8)
    hidden = staged.embed()
    for block in model.encoder.block:
        hidden = staged.apply(block, hidden)
    with torch.no_grad():
        per_window = staged.mean_and_nll(hidden, future)[1]
        torch.testing.assert_close(adapter.loss(model, past, future, 8), per_window.mean())
    # a model pruned before its horizon's head existed cannot be trained for that horizon
    with pytest.raises(AutoPruneError, match="set_windows"):
        adapter.loss(adapter.prune((0, 3)), past, _past(context=24), 8)


def test_attention_probabilities_skip_the_padding(adapter):
    past = _past(context=100)  # 412 padded steps: patches 0..50 are masked, 51 half, 52.. read
    sink: list[torch.Tensor] = []
    with torch.no_grad(), adapter.attention_probabilities(sink):
        captured = adapter.forward(adapter.model, past, HORIZON, 8)
    assert len(sink) == 4 and sink[0].shape == (4, 4, 64, 64)
    torch.testing.assert_close(sink[0].sum(-1), torch.ones(4, 4, 64))
    assert sink[0][..., :52].max() < 1e-6 and sink[0][..., 52:].min() > 0
    with torch.no_grad():
        plain = adapter.forward(adapter.model, past, HORIZON, 8)
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=0)


def test_load_errors_name_the_fix(tiny_dir, tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes())
    config = tiny_config()
    config["t5_config"]["num_layers"] = 6  # the weights hold 4 blocks
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not load as a MOMENTPipeline"):
        MomentAdapter.load(broken)
    del config["t5_config"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="t5_config"):
        MomentAdapter.load(broken)

    for module in ("momentfm", "momentfm.models.moment"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModelLoadError, match=r"autoprune\[moment\]"):
        load_adapter(str(tiny_dir))


def test_search_export_and_reload(tiny_dir, tiny_csv, studies, tmp_path, capsys):
    export_dir, metadata = family_round_trip(
        tiny_dir, tiny_csv, tmp_path, capsys, patch_size=8, num_samples=1, study="m1"
    )
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = MOMENTPipeline.from_pretrained(str(export_dir), strict=True)
    assert len(module.encoder.block) == len(metadata["keep"])
    assert module.task_name == "forecasting" and module.head.linear.out_features == HORIZON

    # a trial re-trained in a fresh load (the head for horizon 16 must exist before pruning)
    number = trained_trials(load_study("m1"))[0].number
    trial_dir = tmp_path / "trial"
    assert main(["export", "m1", "--trial", str(number), "--out", str(trial_dir)]) == 0
    assert json.loads((trial_dir / "config.json").read_text())["forecast_horizon"] == HORIZON
