"""TimesFM 2.5 through its transformers port, on a tiny random model built with the port's own
config class: detection, refusals, the loss (and the port's, which mispairs levels), forecasts,
attention probabilities, and a whole search -> export -> evaluate. Pruning, checkpoints the port
reloads, the staged forward against the port's forward and parameter counts are the contract
every family keeps: test_contracts_families.py."""

import json
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="pip install 'autoprune[timesfm]'")
if not hasattr(transformers, "TimesFm2_5ModelForPrediction"):
    pytest.skip("transformers has no TimesFM 2.5 port", allow_module_level=True)

from transformers import TimesFm2_5Config, TimesFm2_5ModelForPrediction  # noqa: E402

from autoprune.errors import AutoPruneError, ModelLoadError  # noqa: E402
from autoprune.models import MODELS, load_adapter, unique_params  # noqa: E402
from autoprune.models.timesfm import (  # noqa: E402
    ALIASES,
    PUBLISHED_CONFIG,
    TimesFMAdapter,
    pinball_per_window,
)
from autoprune.space import space_for_model  # noqa: E402
from tests._families import port_forecast, timesfm_windows, tiny_timesfm  # noqa: E402
from tests.conftest import family_round_trip  # noqa: E402

tiny_model, windows = tiny_timesfm, timesfm_windows


@pytest.fixture(scope="module")
def tiny_dir(family_checkpoint):
    return family_checkpoint("timesfm")


@pytest.fixture(scope="module")
def adapter(tiny_dir) -> TimesFMAdapter:
    return load_adapter(str(tiny_dir))


def test_checkpoint_is_detected_and_loads_with_the_same_outputs(tiny_dir, adapter):
    assert isinstance(adapter, TimesFMAdapter)
    assert adapter.num_layers == 4 and adapter.patch_sizes == (8,)
    past, _ = windows()
    assert torch.equal(
        port_forecast(adapter.model, past).full_predictions,
        port_forecast(tiny_model(), past).full_predictions,
    )


def test_published_alias_has_the_exact_parameter_count():
    entry = MODELS["timesfm-2.5-200m"]
    assert entry is ALIASES[0] and entry.source == "google/timesfm-2.5-200m-transformers"
    with torch.device("meta"):
        model = TimesFm2_5ModelForPrediction(TimesFm2_5Config(**PUBLISHED_CONFIG))
    assert unique_params(model) == entry.params == 231_289_280
    assert len(model.model.layers) == entry.num_layers == 20
    assert space_for_model("timesfm-2.5-200m", 20).num_layers == 20


def test_prune_renumbers_the_kept_layers_cache_slots(adapter):
    """Each kept attention's layer_idx is its new position, as the port builds a model of
    that depth. (Copies, untouched original, counts, strict reloads: test_contracts_families.)"""
    pruned = adapter.prune((0, 3))
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1]
    assert [layer.self_attn.layer_idx for layer in adapter.model.model.layers] == [0, 1, 2, 3]


def test_a_checkpoint_whose_weights_do_not_match_its_config_is_refused(tmp_path):
    tiny_model().save_pretrained(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 5}))
    with pytest.raises(ModelLoadError, match="missing keys: model.layers.4"):
        TimesFMAdapter.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    with pytest.raises(ModelLoadError, match="weight shapes differ"):
        TimesFMAdapter.load(tmp_path)


def test_quantiles_of_a_positive_series_are_clamped_at_zero(adapter):
    """infer_is_positive, as the port applies it (the staged pass against the port's forward,
    this window included: test_contracts_families)."""
    past, _ = windows(context=64, offset=40.0)
    assert past.min() > 0
    with torch.no_grad():
        ours = adapter.forward(adapter.model, past, 16, 8)
    assert ours.quantiles.min() >= 0


def test_loss_trains_and_mean_and_nll_scores_each_window(adapter):
    past, future = windows(batch=4)
    model = adapter.prune((0, 2))
    model.train()
    loss = adapter.loss(model, past, future, 8)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.model.layers[0].mlp.fc1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        staged = adapter.staged(model, past, 16, 8)
        hidden = staged.embed()
        for layer in adapter.layers(model):
            hidden = staged.apply(layer, hidden)
        mean, per_window = staged.mean_and_nll(hidden, future)
        assert mean.shape == (4, 16) and per_window.shape == (4,)
        torch.testing.assert_close(per_window.mean(), adapter.loss(model, past, future, 8))
        torch.testing.assert_close(mean, port_forecast(model, past).mean_predictions)
        assert torch.all(per_window > 0)


def test_pinball_pairs_every_quantile_channel_with_its_own_level():
    # channels: mean (ignored), q0.1 = -1, q0.5 = 0.5 (the point channel), q0.9 = +1; truth 0
    forecast = torch.tensor([[[7.0, -1.0, 0.5, 1.0]]])
    loss = pinball_per_window(forecast, torch.zeros(1, 1), (0.1, 0.5, 0.9), point_channel=2)
    # MSE 0.25 + mean of pinball(q0.1, error 1) = 0.1 and pinball(q0.9, error -1) = 0.1
    torch.testing.assert_close(loss, torch.tensor([0.35]))


def test_port_loss_still_mispairs_quantile_levels(adapter):
    """Why `loss` is not the port's own: the port zips the channels other than decode_index
    (mean, q0.1, ..., q0.4, q0.6, ..., q0.9) with the levels 0.1..0.9. If this fails,
    transformers has changed its loss; check whether `model(..., future_values=).loss` can be
    used for re-alignment."""
    past, future = windows()
    model, config = adapter.model, adapter.model.config
    with torch.no_grad():
        port = model(past_values=past, forecast_context_len=56, future_values=future)
        staged = adapter.staged(model, past, 16, 8)
        hidden = staged.embed()
        for layer in adapter.layers(model):
            hidden = staged.apply(layer, hidden)
        ours = staged.distribution(hidden)
    torch.testing.assert_close(ours.point, port.mean_predictions)
    target = model.model._revin(future, staged.loc, staged.scale)
    mispaired = [c for c in range(len(config.quantiles) + 1) if c != config.decode_index]
    pairs = zip(mispaired, config.quantiles, strict=True)
    errors = [(target - ours.normalised[..., c], q) for c, q in pairs]
    quantile_loss = torch.stack([torch.maximum((q - 1) * e, q * e).mean() for e, q in errors])
    quantile_loss = quantile_loss.mean()
    mse = (ours.normalised[..., config.decode_index] - target).pow(2).mean()
    torch.testing.assert_close(port.loss, mse + quantile_loss)
    assert not torch.isclose(port.loss, adapter.loss(model, past, future, 8))


def test_forecast_paths_read_back_the_ports_quantiles(adapter):
    past, _ = windows()
    paths = adapter.forecast(adapter.model, past, 12, 8, num_samples=9)
    assert paths.shape == (3, 9, 12) and torch.isfinite(paths).all()
    assert torch.all(paths.diff(dim=1) >= 0)
    # 9 paths sit at levels 0.1/18 ... 17/18; the middle one at 0.5: the port's median channel
    # (the quantile channels sorted, since a random head's quantiles cross)
    port = port_forecast(adapter.model, past).full_predictions[:, :12, 1:]
    torch.testing.assert_close(paths[:, 4], port.sort(dim=-1).values[..., 4])
    assert torch.equal(paths, adapter.forecast(adapter.model, past, 12, 8, 9, seed=5))


def test_a_horizon_beyond_one_output_patch_is_refused(adapter):
    past, future = windows(horizon=17)
    with pytest.raises(AutoPruneError, match=r"--horizon 17 .*\(16 steps\)"):
        adapter.forecast(adapter.model, past, 17, 8, 10)
    with pytest.raises(AutoPruneError, match="no autoregressive decoding"):
        adapter.loss(adapter.model, past, future, 8)


def test_without_transformers_loading_names_the_extra(tiny_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelLoadError, match=r"pip install 'autoprune\[timesfm\]'"):
        load_adapter(str(tiny_dir))


def test_search_export_and_evaluate_a_tiny_timesfm(tiny_dir, tiny_csv, studies, tmp_path, capsys):
    export, metadata = family_round_trip(tiny_dir, tiny_csv, tmp_path, capsys, patch_size=8)
    reloaded = TimesFm2_5ModelForPrediction.from_pretrained(str(export))
    assert reloaded.config.num_hidden_layers == len(metadata["keep"]) < 4


def test_attention_probabilities_come_from_the_ports_eager_attention(adapter):
    from autoprune.data import Windows
    from autoprune.importance import capture

    past, future = windows(context=64)
    plain = adapter.forward(adapter.model, past, 16, 8)
    sink: list[torch.Tensor] = []
    with adapter.attention_probabilities(sink):
        recorded = adapter.forward(adapter.model, past, 16, 8)
    assert adapter.model.config._attn_implementation != "eager"  # restored
    torch.testing.assert_close(recorded.quantiles, plain.quantiles)
    assert len(sink) == 4 and sink[0].shape == (6, 4, 8, 8)  # 3 windows and their negations
    torch.testing.assert_close(sink[0].sum(-1), torch.ones(6, 4, 8))
    assert torch.all(sink[0].triu(diagonal=1) == 0)  # causal: no patch sees a later one

    captured = capture(
        adapter, adapter.model, Windows(past.numpy(), future.numpy()), 16, 8, attention=True
    )
    assert len(captured.hidden) == 5 and len(captured.attention) == 4
