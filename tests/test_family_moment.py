"""MOMENT through momentfm 0.1.4 (installed with --no-deps next to transformers 5): a tiny
random MOMENTPipeline built and loaded offline, its seeded forecasting head, the position bias
handed to the first kept block, the saved forecasting config, and a search end to end. Pruning,
strict momentfm reloads, the staged pass against momentfm's forward and parameter counts are
the contract every family keeps: test_contracts_families.py."""

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

from autoprune.cli import main  # noqa: E402
from autoprune.errors import AutoPruneError, ModelLoadError  # noqa: E402
from autoprune.models import MODELS, load_adapter  # noqa: E402
from autoprune.models.moment import (  # noqa: E402
    DEFAULT_HORIZON,
    MomentAdapter,
    published_config,
)
from autoprune.study import load_study, trained_trials  # noqa: E402
from tests._families import (  # noqa: E402
    MOMENT_HORIZON,
    build_moment,
    moment_config,
    moment_past,
    momentfm_forecast,
    momentfm_reload,
)
from tests.conftest import family_round_trip  # noqa: E402

HORIZON = MOMENT_HORIZON
tiny_config, build, _library = moment_config, build_moment, momentfm_forecast


@pytest.fixture(scope="module")
def tiny_dir(family_checkpoint):
    """A random tiny MOMENTPipeline saved by momentfm's own save_pretrained, with a T5 config
    that momentfm must not look up on the hub (there is none offline)."""
    return family_checkpoint("moment")


@pytest.fixture
def adapter(tiny_dir, monkeypatch):
    from transformers import T5Config

    def no_hub(*args, **kwargs):
        raise AssertionError("MOMENT asked the hub for a T5 config")

    monkeypatch.setattr(T5Config, "from_pretrained", no_hub)
    return load_adapter(str(tiny_dir))


_past = moment_past


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


def test_params_follow_the_forecasting_heads_horizon(adapter):
    """The head's size depends on the horizon: counts stay exact for the default head and
    after set_windows builds another (untouched original, counts at horizon 16, reloads:
    test_contracts_families)."""
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


def test_forecast_is_one_path_that_reads_the_last_512_steps(adapter):
    """(Its staged pass against momentfm's forward for contexts 100, 512 and 700:
    test_contracts_families.)"""
    past = _past(context=700)
    for model in (adapter.model, adapter.prune((0, 2))):
        ours = _forecast(adapter, model, past)
        assert ours.shape == (4, 1, HORIZON) and torch.isfinite(ours).all()
        torch.testing.assert_close(ours, _forecast(adapter, model, past[:, -512:]))


def test_saved_checkpoint_is_a_forecasting_moment_for_its_horizon(adapter, tmp_path):
    """What the saved config says besides the depth, the pruned model's own save_pretrained,
    and the trained head's horizon kept on reload (strict momentfm reload and identical
    forecasts: test_contracts_families)."""
    adapter.set_windows(512, HORIZON)
    pruned = adapter.prune((1, 2))
    adapter.save(pruned, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["t5_config"]["num_layers"] == 2
    assert (config["task_name"], config["forecast_horizon"]) == ("forecasting", HORIZON)
    past = _past()
    # the pruned model's own save_pretrained (without the adapter) says its depth too
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned.save_pretrained(str(tmp_path / "own"))
    own = momentfm_reload(tmp_path / "own")
    assert len(own.encoder.block) == 2
    assert torch.equal(_library(own, past), _library(pruned, past))
    # autoprune reloads it, trained head and all, and keeps it to its horizon
    again = load_adapter(str(tmp_path))
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
    module = momentfm_reload(export_dir)
    assert len(module.encoder.block) == len(metadata["keep"])
    assert module.task_name == "forecasting" and module.head.linear.out_features == HORIZON

    # a trial re-trained in a fresh load (the head for horizon 16 must exist before pruning)
    number = trained_trials(load_study("m1"))[0].number
    trial_dir = tmp_path / "trial"
    assert main(["export", "m1", "--trial", str(number), "--out", str(trial_dir)]) == 0
    assert json.loads((trial_dir / "config.json").read_text())["forecast_horizon"] == HORIZON
