import contextlib
import io
import math

import pytest
import torch

from autoprune.errors import ModelLoadError, UnknownNameError
from autoprune.models import MODELS, load_adapter
from autoprune.models.moirai import MoiraiAdapter, _uni2ts
from tests.conftest import build_tiny_module


@pytest.fixture
def adapter(tiny_model_dir):
    return load_adapter(str(tiny_model_dir))


def _past(batch=4, context=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(context, dtype=torch.float32)
    return 5 + torch.sin(t / 3) + 0.1 * torch.randn(batch, context, generator=g)


def test_prune_save_reload_forecasts_identically(adapter, tmp_path):
    pruned = adapter.prune((0, 2))
    adapter.save(pruned, tmp_path)
    MoiraiModule = _uni2ts()[0]
    with contextlib.redirect_stdout(io.StringIO()):
        reloaded = MoiraiModule.from_pretrained(str(tmp_path), strict=True)
    assert reloaded.num_layers == 2 and len(reloaded.encoder.layers) == 2
    past = _past()
    with torch.no_grad():
        a = adapter.forecast(pruned, past, 16, 16, num_samples=30, seed=3)
        b = adapter.forecast(reloaded.eval(), past, 16, 16, num_samples=30, seed=3)
    assert a.shape == (4, 30, 16)
    assert torch.equal(a, b)


def test_prune_keeps_the_loaded_model_untouched(adapter):
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    pruned = adapter.prune([3])
    assert len(adapter.model.encoder.layers) == 4
    assert adapter.model._hub_mixin_config["num_layers"] == 4
    with torch.no_grad():
        for p in pruned.parameters():
            p.add_(1.0)
    for key, value in adapter.model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_pruned_layers_are_the_chosen_ones(adapter):
    pruned = adapter.prune((1, 3))
    original = adapter.model.encoder.layers
    for new, old in zip(pruned.encoder.layers, (original[1], original[3]), strict=True):
        for a, b in zip(new.parameters(), old.parameters(), strict=True):
            assert torch.equal(a, b)


def test_parameter_counts_match_a_hand_count(adapter):
    d, heads = 64, 1  # Moirai uses d_model // 64 heads of width 64
    hidden = adapter.model.encoder.layers[0].ffn.fc1.out_features  # GLU width chosen by uni2ts
    # q, k, v, out projections + q/k RMSNorm (one head width each) + binary variate bias
    # (2 values per head) + GLU FFN (3 matrices) + the block's two RMSNorms
    per_layer = 4 * d * d + 2 * (d // heads) + 2 * heads + 3 * d * hidden + 2 * d
    assert adapter.layer_params() == [per_layer] * 4
    total = sum(p.numel() for p in adapter.model.parameters())
    assert adapter.params() == total
    for keep in [(0,), (1, 3), (0, 1, 2)]:
        assert adapter.params(keep) == sum(p.numel() for p in adapter.prune(keep).parameters())
    assert adapter.params((0, 1)) == total - 2 * per_layer


def test_bad_keep_sets_are_rejected(adapter):
    with pytest.raises(Exception, match="out of range"):
        adapter.prune((0, 4))
    with pytest.raises(Exception, match="at least one"):
        adapter.prune(())


def test_loss_is_finite_and_trains(adapter):
    model = adapter.prune((0, 1))
    past, future = _past(8, 64), _past(8, 16, seed=1)
    loss = adapter.loss(model, past, future, 16)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_sliced_forward_matches_the_module_forward(adapter):
    """Our horizon-only head must give the same predictive mean as MoiraiModule.forward."""
    model, past, horizon = adapter.model, _past(), 20
    for patch in adapter.patch_sizes:  # 8 is narrower than the 16-wide head: slicing matters
        packed, patch_t, first = adapter._pack(model, past, horizon, patch)
        with torch.no_grad():
            full = model(*packed, patch_t).mean[:, first:, :patch].flatten(1)[:, :horizon]
            ours = adapter.forward(model, past, horizon, patch).mean.flatten(1)[:, :horizon]
            samples = adapter.forecast(model, past, horizon, patch, num_samples=5)
        torch.testing.assert_close(ours, full)
        assert samples.shape == (4, 5, horizon)


def test_directory_without_safetensors_is_refused(tmp_path, adapter):
    torch.save(adapter.model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="pickle"):
        MoiraiAdapter.load(tmp_path)


def test_mismatched_config_is_refused(tmp_path, tiny_model_dir):
    import json
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["num_layers"] = 6
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not load"):
        load_adapter(str(tmp_path / "m"))


def test_alias_not_cached_offline_says_how_to_use_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="--model DIR"):
        load_adapter("moirai-small")


def test_unknown_model_is_named():
    with pytest.raises(UnknownNameError, match="not-a-model"):
        load_adapter("not-a-model")


def test_aliases_map_to_salesforce_hub_ids():
    assert MODELS["moirai-small"].source == "Salesforce/moirai-1.0-R-small"
    assert MODELS["moirai-1.1-large"].source == "Salesforce/moirai-1.1-R-large"


def _published_shape(size):
    from uni2ts.distribution import (
        LogNormalOutput,
        MixtureOutput,
        NegativeBinomialOutput,
        NormalFixedScaleOutput,
        StudentTOutput,
    )

    shape = MODELS[f"moirai-{size}"].shape
    head = MixtureOutput(
        components=[
            StudentTOutput(),
            NormalFixedScaleOutput(),
            NegativeBinomialOutput(),
            LogNormalOutput(),
        ]
    )
    module = _uni2ts()[0](
        distr_output=head, max_seq_len=512, attn_dropout_p=0.0, dropout_p=0.0, **shape
    )
    return MoiraiAdapter(module, size)


@pytest.mark.parametrize(
    "size,layers,millions",
    [
        ("small", 6, 13.8),
        ("base", 12, 91.4),
        pytest.param("large", 24, 311.0, marks=pytest.mark.slow),
    ],
)
def test_real_moirai_shapes(size, layers, millions):
    adapter = _published_shape(size)
    assert adapter.num_layers == layers == MODELS[f"moirai-{size}"].num_layers
    assert adapter.params() / 1e6 == pytest.approx(millions, rel=0.01)
    # what `autoprune list models` shows is the exact count
    listed = {MODELS[f"moirai-{size}"].params, MODELS[f"moirai-1.1-{size}"].params}
    assert listed == {adapter.params()}
    half = tuple(range(0, layers, 2))
    pruned = adapter.prune(half)
    assert len(pruned.encoder.layers) == layers // 2
    assert adapter.params(half) == sum(p.numel() for p in pruned.parameters())


def test_tiny_module_shares_rotary_projection():
    adapter = MoiraiAdapter(build_tiny_module(), "t")
    pruned = adapter.prune((0, 2))
    a, b = pruned.encoder.layers
    assert a.self_attn.time_qk_proj is b.self_attn.time_qk_proj


def test_quantile_paths_read_back_the_predicted_quantiles():
    import numpy as np

    from autoprune.models._base import quantiles_to_paths

    levels = [0.1 * i for i in range(1, 10)]
    rng = np.random.default_rng(0)
    quantiles = torch.as_tensor(np.sort(rng.normal(size=(2, 9, 5)), axis=1))
    paths = quantiles_to_paths(quantiles, levels, 200)
    assert paths.shape == (2, 200, 5)
    back = np.quantile(paths.numpy(), [0.5], axis=1)[0]
    assert np.allclose(back, quantiles[:, 4].numpy(), atol=0.05 * quantiles.std().item())
    assert torch.equal(paths, quantiles_to_paths(quantiles, levels, 200))  # no randomness
