"""Moirai (uni2ts 1.x) on the tiny module of conftest, and the alias registry. Pruning, strict
reloads, the staged pass against MoiraiModule.forward and exact parameter counts are the
contract every family keeps: test_contracts_families.py."""

import contextlib
import math

import pytest
import torch

from autoprune.errors import ModelLoadError, UnknownNameError
from autoprune.models import MODELS, load_adapter
from autoprune.models.moirai import MoiraiAdapter, _uni2ts, draw
from tests._families import moirai_past as _past
from tests.conftest import build_tiny_module


@pytest.fixture
def adapter(tiny_model_dir):
    return load_adapter(str(tiny_model_dir))


def test_parameter_counts_match_a_hand_count(adapter):
    d, heads = 64, 1  # Moirai uses d_model // 64 heads of width 64
    hidden = adapter.model.encoder.layers[0].ffn.fc1.out_features  # GLU width chosen by uni2ts
    # q, k, v, out projections + q/k RMSNorm (one head width each) + binary variate bias
    # (2 values per head) + GLU FFN (3 matrices) + the block's two RMSNorms
    per_layer = 4 * d * d + 2 * (d // heads) + 2 * heads + 3 * d * hidden + 2 * d
    assert adapter.layer_params() == [per_layer] * 4
    # pruned models' exact counts: test_contracts_families
    assert adapter.params((0, 1)) == adapter.params() - 2 * per_layer


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


def test_the_horizon_loss_is_the_modules_own_loss(adapter):
    """`loss` scores only the horizon tokens' first patch_size values, from the staged pass;
    uni2ts's PackedNLLLoss of the module's own forward (every token, the widest patch, the rest
    masked) gives the same gradients bit for bit and the same loss up to its summation order,
    for every patch size, also when the horizon ends inside a patch."""
    PackedNLLLoss = _uni2ts()[2]
    past = _past(8, 64)
    for keep in ((0,), (1, 3), (0, 1, 2, 3)):
        model = adapter.prune(keep)
        for patch, horizon in ((8, 16), (16, 16), (16, 20), (32, 40)):
            future = _past(8, horizon, seed=1)
            packed, patch_ids, _ = adapter._pack(model, past, horizon, patch, future)
            target, observed, sample_id, time_id, variate_id, pred_mask = packed
            distr = model(target, observed, sample_id, time_id, variate_id, pred_mask, patch_ids)
            own = PackedNLLLoss()(
                pred=distr,
                target=target,
                prediction_mask=pred_mask,
                observed_mask=observed,
                sample_id=sample_id,
                variate_id=variate_id,
            )
            ours = adapter.loss(model, past, future, patch)
            params = list(model.parameters())
            pairs = zip(
                torch.autograd.grad(ours, params), torch.autograd.grad(own, params), strict=True
            )
            assert all(torch.equal(a, b) for a, b in pairs), (keep, patch, horizon)
            torch.testing.assert_close(ours, own, rtol=1e-6, atol=0)


def test_one_patch_size_changes_no_bit(adapter, monkeypatch):
    """The staged pass with uni2ts's multi-size layers computing the batch's patch size only
    (`one_patch_size`): loss, gradients and the forecast distribution are bit for bit those of
    the layers computing every size, for every patch size the model has."""

    def run():
        model = adapter.prune((0, 2))
        out = []
        for patch in adapter.patch_sizes:
            past, future = _past(8, 64), _past(8, 20, seed=1)
            loss = adapter.loss(model, past, future, patch)
            out += [loss, *torch.autograd.grad(loss, list(model.parameters()))]
            with torch.no_grad():
                out.append(adapter.forward(model, past, 20, patch).mean)
        return out

    fast = run()
    monkeypatch.setattr(
        "autoprune.models.moirai.one_patch_size", lambda module, size: contextlib.nullcontext()
    )
    every = run()
    assert len(fast) == len(every) > 0
    assert all(torch.equal(a, b) for a, b in zip(fast, every, strict=True))


def test_scoring_draws_nothing_and_changes_no_loss_or_gradient(adapter, monkeypatch):
    """`draw_free` against uni2ts's own mixture log-probability (which draws a stand-in sample
    of every component): the same loss and gradients to the last bit, also where the targets
    are whole numbers (inside the negative binomial's support), and the global random state
    is left where it was."""
    past, future = _past(8, 64), _past(8, 16, seed=1)
    future[::2] = future[::2].round()  # whole numbers: the count component scores them

    def loss_and_grads():
        model = adapter.prune((0, 1, 2))
        loss = adapter.loss(model, past, future, 16)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    torch.manual_seed(7)
    state = torch.get_rng_state()
    free_loss, free_grads = loss_and_grads()
    assert torch.equal(torch.get_rng_state(), state)
    monkeypatch.setattr("autoprune.models.moirai.draw_free", lambda distr: distr)
    own_loss, own_grads = loss_and_grads()
    assert not torch.equal(torch.get_rng_state(), state)  # uni2ts's own scoring draws
    assert torch.equal(free_loss, own_loss)
    assert len(free_grads) == len(own_grads) > 0
    assert all(torch.equal(a, b) for a, b in zip(free_grads, own_grads, strict=True))


def test_drawing_by_component_keeps_the_mixture_distribution():
    """`draw` against uni2ts's own `Mixture.sample` on a mixture of the four components the
    shipped models use, with weights far from one-hot, so every component is drawn where it is
    picked: the empirical CDFs of 20,000 draws at each of 6 points agree within the sampling
    error (DKW: 0.014 each at 99.9%), and a one-hot mixture draws its one component."""
    from torch.distributions import Categorical, LogNormal, Normal, StudentT
    from uni2ts.distribution.mixture import Mixture
    from uni2ts.distribution.negative_binomial import NegativeBinomial

    def mixture(probs):
        batch = (2, 3)
        loc = torch.tensor([[-4.0, 0.0, 4.0], [1.0, 2.0, 3.0]])
        return Mixture(
            Categorical(probs=torch.tensor(probs).expand(*batch, 4)),
            [
                StudentT(torch.full(batch, 3.0), loc, torch.full(batch, 0.5)),
                Normal(loc + 8, torch.full(batch, 1e-3)),
                NegativeBinomial(torch.full(batch, 5.0), torch.full(batch, 0.3)),
                LogNormal(loc / 4, torch.full(batch, 0.4)),
            ],
        )

    torch.manual_seed(0)
    mixed = mixture([0.4, 0.1, 0.3, 0.2])
    ours, theirs = draw(mixed, torch.Size((20_000,))), mixed.sample(torch.Size((20_000,)))
    assert ours.shape == theirs.shape == (20_000, 2, 3)
    for point in range(6):
        a, b = ours.view(20_000, 6)[:, point], theirs.view(20_000, 6)[:, point]
        grid = torch.cat([a, b]).quantile(torch.linspace(0.05, 0.95, 19))
        gap = ((a[:, None] <= grid).float().mean(0) - (b[:, None] <= grid).float().mean(0)).abs()
        assert gap.max() < 0.03, (point, gap.max())
    counts = draw(mixture([0.0, 0.0, 1.0, 0.0]), torch.Size((50,)))
    assert torch.equal(counts, counts.round()) and (counts >= 0).all()


def test_forecast_samples_the_horizon_with_every_patch_size(adapter):
    """Sampled paths (B, samples, horizon), also for patch 8, narrower than the 16-wide head
    (the staged pass against MoiraiModule.forward: test_contracts_families)."""
    past = _past()
    for patch in adapter.patch_sizes:
        with torch.no_grad():
            samples = adapter.forecast(adapter.model, past, 20, patch, num_samples=5)
        assert samples.shape == (4, 5, 20) and torch.isfinite(samples).all()
        assert torch.equal(samples, adapter.forecast(adapter.model, past, 20, patch, 5))


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
