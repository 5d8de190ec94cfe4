"""Moirai-MoE and Moirai 2.0 (uni2ts >= 2.0.0) on tiny random models built with uni2ts's own
constructors: detection, the MoE's per-layer router centroids going with their layers, the
first-step screen loss, the next-token losses, the library's own forecasts, and a whole
search -> export -> evaluate. Pruning, checkpoints uni2ts reloads strictly, the one-step staged
pass against the library's forward and parameter counts are the contract every family keeps:
test_contracts_families.py."""

import json
import sys

import pytest
import torch

from autoprune.models.moirai2 import INSTALL

pytest.importorskip("uni2ts.model.moirai_moe", reason=INSTALL)
pytest.importorskip("uni2ts.model.moirai2", reason=INSTALL)

from uni2ts.model.moirai2 import Moirai2Forecast, Moirai2Module  # noqa: E402
from uni2ts.model.moirai_moe import MoiraiMoEForecast, MoiraiMoEModule  # noqa: E402

from autoprune.errors import ModelLoadError  # noqa: E402
from autoprune.models import MODELS, load_adapter, unique_params  # noqa: E402
from autoprune.models.moirai import MoiraiAdapter  # noqa: E402
from autoprune.models.moirai2 import (  # noqa: E402
    ALIASES,
    Moirai2Adapter,
    MoiraiMoEAdapter,
    _past_inputs,
)
from autoprune.space import space_for_model  # noqa: E402
from tests._families import (  # noqa: E402
    MOIRAI2_PATCH,
    moe_first_step,
    moirai2_windows,
    moirai_head,
    tiny_moe,
    tiny_moirai2,
)
from tests.conftest import family_round_trip  # noqa: E402

PATCH = MOIRAI2_PATCH
head, windows, library_first_step = moirai_head, moirai2_windows, moe_first_step


@pytest.fixture(scope="module")
def moe_dir(family_checkpoint):
    return family_checkpoint("moirai-moe")


@pytest.fixture(scope="module")
def moirai2_dir(family_checkpoint):
    return family_checkpoint("moirai-2")


@pytest.fixture(scope="module")
def moe(moe_dir) -> MoiraiMoEAdapter:
    return load_adapter(str(moe_dir))


@pytest.fixture(scope="module")
def moirai2(moirai2_dir) -> Moirai2Adapter:
    return load_adapter(str(moirai2_dir))


def run_staged(adapter, model, past, horizon, keep=None):
    staged = adapter.staged(model, past, horizon, PATCH)
    hidden = staged.embed()
    layers = adapter.layers(model)
    for i in keep if keep is not None else range(len(layers)):
        hidden = staged.apply(layers[i], hidden)
    return staged, hidden


def test_checkpoints_are_detected_and_load_with_the_same_weights(
    moe, moirai2, moe_dir, moirai2_dir, tiny_model_dir
):
    assert isinstance(moe, MoiraiMoEAdapter) and moe.num_layers == 4
    assert isinstance(moirai2, Moirai2Adapter) and moirai2.num_layers == 4
    assert moe.patch_sizes == moirai2.patch_sizes == (PATCH,)
    assert moe.pick_patch_size(16) == moirai2.pick_patch_size(32) == PATCH
    for model, built in ((moe.model, tiny_moe()), (moirai2.model, tiny_moirai2())):
        assert all(torch.equal(v, built.state_dict()[k]) for k, v in model.state_dict().items())
    moe_config = json.loads((moe_dir / "config.json").read_text())
    moirai2_config = json.loads((moirai2_dir / "config.json").read_text())
    v1_config = json.loads((tiny_model_dir / "config.json").read_text())
    # a Moirai-MoE config has Moirai's keys too: Moirai must not claim it
    assert not MoiraiAdapter.recognizes(moe_config) and MoiraiAdapter.recognizes(v1_config)
    assert not MoiraiMoEAdapter.recognizes(v1_config)
    assert not Moirai2Adapter.recognizes(v1_config) and not Moirai2Adapter.recognizes(moe_config)
    assert not MoiraiAdapter.recognizes(moirai2_config)
    assert not MoiraiMoEAdapter.recognizes(moirai2_config)
    assert type(load_adapter(str(tiny_model_dir))) is MoiraiAdapter


@pytest.mark.parametrize(
    "alias, build",
    [
        (
            "moirai-moe-1.0-small",
            lambda: MoiraiMoEModule(
                distr_output=head(), d_model=384, d_ff=512, num_layers=6, patch_sizes=(16,),
                max_seq_len=512, attn_dropout_p=0.0, dropout_p=0.0,
            ),
        ),
        (
            "moirai-moe-1.0-base",
            lambda: MoiraiMoEModule(
                distr_output=head(), d_model=768, d_ff=1024, num_layers=12, patch_sizes=(16,),
                max_seq_len=512, attn_dropout_p=0.0, dropout_p=0.0,
            ),
        ),
        (
            "moirai-2.0-small",
            lambda: Moirai2Module(
                d_model=384, d_ff=1024, num_layers=6, patch_size=16, max_seq_len=512,
                attn_dropout_p=0.0, dropout_p=0.0, num_predict_token=4,
                quantile_levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            ),
        ),
    ],
)  # fmt: skip
def test_published_aliases_have_the_exact_parameter_count(alias, build):
    """The published configs (hub config.json), built on the meta device."""
    entry = MODELS[alias]
    assert entry in ALIASES
    with torch.device("meta"):
        model = build()
    assert unique_params(model) == entry.params
    assert len(model.encoder.layers) == entry.num_layers
    assert space_for_model(alias, entry.num_layers).num_layers == entry.num_layers
    hub = {"moirai-moe-1.0": "moirai-moe-1.0-R", "moirai-2.0": "moirai-2.0-R"}
    version, size = alias.rsplit("-", 1)
    assert entry.source == f"Salesforce/{hub[version]}-{size}"


def test_prune_keeps_each_moe_layer_routing_with_its_own_centroids(moe):
    """The router centroids (a buffer of the encoder, one row per layer) go with their layers.
    (Untouched original, counts, reloads: test_contracts_families.)"""
    original = moe.model
    keep = (1, 3)
    pruned = moe.prune(keep)
    assert original.encoder.centroid.shape[0] == 4
    assert torch.equal(pruned.encoder.centroid, original.encoder.centroid[list(keep)])

    # the pruned model's own forward == the original layers 1 and 3 run with their centroids
    past, _ = windows()
    distr, last = library_first_step(moe, pruned, past, 20)
    layers, centroid = original.encoder.layers, original.encoder.centroid
    outputs = []
    for routing in ({}, {3: 1}):  # then layer 3 routed with layer 1's centroids
        staged = moe.staged(original, past, 20, PATCH)
        staged.centroid.update({id(layers[i]): centroid[j] for i, j in routing.items()})
        with torch.no_grad():
            hidden = staged.embed()
            for i in keep:
                hidden = staged.apply(layers[i], hidden)
            outputs.append(staged.distribution(hidden).mean[:, 0])
    torch.testing.assert_close(outputs[0], distr.mean[:, last])
    assert not torch.allclose(outputs[1], distr.mean[:, last], atol=1e-3)


def test_saving_a_moe_whose_centroids_do_not_match_its_layers_is_refused(moe, tmp_path):
    cut = moe.prune((0, 1, 2, 3))
    cut.encoder.layers = cut.encoder.layers[:2]
    cut._hub_mixin_config = {**cut._hub_mixin_config, "num_layers": 2}
    with pytest.raises(ModelLoadError, match="router centroids for 4"):
        moe.save(cut, tmp_path)


def test_a_config_naming_foreign_code_is_refused_before_uni2ts_reads_it(moe_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((moe_dir / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    config["distr_output"]["_target_"] = "os.system"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="_target_ = 'os.system'"):
        load_adapter(str(tmp_path))


@pytest.mark.parametrize("family", ["moe", "moirai2"])
def test_mean_and_nll_scores_the_first_step_only(family, moe, moirai2):
    adapter = {"moe": moe, "moirai2": moirai2}[family]
    covered = {"moe": PATCH, "moirai2": 2 * PATCH}[family]
    past, future = windows(horizon=20)
    staged, hidden = run_staged(adapter, adapter.model, past, 20)
    with torch.no_grad():
        mean, loss = staged.mean_and_nll(hidden, future)
        later = future.clone()
        later[:, covered:] += 100.0
        mean_later, loss_later = staged.mean_and_nll(hidden, later)
    # the point forecast of the steps one pass covers; the screen scores those steps only
    assert mean.shape == (3, covered) and loss.shape == (3,) and torch.all(loss > 0)
    assert torch.equal(loss, loss_later)  # the part of the horizon the step does not reach
    assert torch.equal(mean, mean_later)
    assert not torch.equal(mean, future[:, :covered])


def test_moe_loss_is_the_next_token_nll_and_trains(moe):
    past, future = windows(horizon=PATCH)
    model = moe.prune((0, 2))
    staged, hidden = run_staged(moe, model, past, PATCH)
    with torch.no_grad():
        _, nll = staged.mean_and_nll(hidden, future)
    # one horizon patch: the last context token's distribution scores it, per window, averaged
    model.train()
    loss = moe.loss(model, past, future, PATCH)
    torch.testing.assert_close(loss, nll.mean(), atol=1e-5, rtol=1e-5)
    loss.backward()
    assert model.encoder.layers[1].self_attn.q_proj.weight.grad.abs().sum() > 0
    grads = [expert.fc1.weight.grad for expert in model.encoder.layers[1].ffn.experts]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # the routed experts learn
    longer = moe.loss(model, *windows(horizon=20), PATCH)
    assert longer.ndim == 0 and torch.isfinite(longer)


def test_moirai2_loss_scores_every_output_patch_against_its_own_token(moirai2):
    past, future = windows(horizon=20)
    model = moirai2.prune((1, 2))
    model.train()
    loss = moirai2.loss(model, past, future, PATCH)
    loss.backward()
    assert model.encoder.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0

    # the definition, written out: output k of token t against token t + k of the horizon, on
    # the normalised series, pinball loss averaged per window, then over windows
    with torch.no_grad():
        packed, _, context_tokens = moirai2._pack(model, past, 20, PATCH, future)
        target, observed, sample_id, time_id, variate_id, mask = packed
        preds, scaled = model(target, observed, sample_id, time_id, variate_id, mask)
        steps, levels = model.num_predict_token, torch.tensor(model.quantile_levels)
        preds = preds.view(*preds.shape[:2], steps, len(levels), PATCH)
        per_window = []
        for b in range(past.shape[0]):
            terms = []
            for t in range(preds.shape[1]):
                for k in range(1, steps + 1):
                    if context_tokens <= t + k < preds.shape[1]:
                        error = scaled[b, t + k] - preds[b, t, k - 1]  # (quantile, patch)
                        pinball = torch.maximum(
                            levels[:, None] * error, (levels[:, None] - 1) * error
                        )
                        terms.append(pinball.mean(0)[observed[b, t + k]])
            per_window.append(torch.cat(terms).mean())
        torch.testing.assert_close(loss.detach(), torch.stack(per_window).mean())


def test_forecasts_are_the_librarys_own(moe, moirai2):
    past, _ = windows()
    paths = moe.forecast(moe.model, past, 20, PATCH, 7, seed=2)
    library = MoiraiMoEForecast(
        prediction_length=20, target_dim=1, feat_dynamic_real_dim=0,
        past_feat_dynamic_real_dim=0, context_length=40, module=moe.model, patch_size=PATCH,
        num_samples=7,
    )  # fmt: skip
    torch.manual_seed(2)
    with torch.no_grad():
        assert torch.equal(paths, library(*_past_inputs(past)))
    assert paths.shape == (3, 7, 20) and torch.isfinite(paths).all()
    assert torch.equal(paths, moe.forecast(moe.model, past, 20, PATCH, 7, seed=2))
    assert not torch.equal(paths, moe.forecast(moe.model, past, 20, PATCH, 7, seed=3))

    paths = moirai2.forecast(moirai2.model, past, 20, PATCH, 9)
    library = Moirai2Forecast(
        prediction_length=20, target_dim=1, feat_dynamic_real_dim=0,
        past_feat_dynamic_real_dim=0, context_length=40, module=moirai2.model,
    )  # fmt: skip
    with torch.no_grad():
        quantiles = library(*_past_inputs(past))  # (batch, 9 levels, 20): two rollout steps
    assert paths.shape == (3, 9, 20) and torch.all(paths.diff(dim=1) >= 0)
    # 9 paths at levels (k + 0.5) / 9; the middle one is the median: the sorted 5th quantile
    torch.testing.assert_close(paths[:, 4], quantiles.sort(dim=1).values[:, 4])


def test_moirai2_loss_keeps_the_models_training_mode(moirai2):
    model = moirai2.prune((0, 1))
    model.train()
    moirai2.loss(model, *windows(), PATCH)
    assert model.training  # Moirai2Forecast's constructor calls module.eval()


def test_importance_capture_reads_one_causal_pass(moirai2, moe):
    from autoprune.data import Windows
    from autoprune.importance import capture

    past, future = windows(horizon=20)
    for adapter in (moe, moirai2):
        captured = capture(
            adapter, adapter.model, Windows(past.numpy(), future.numpy()), 20, PATCH, True
        )
        assert len(captured.hidden) == 5 and len(captured.attention) == 4
        assert captured.hidden[0].shape == (3, 5, 64)  # the 5 context tokens
        probs = captured.attention[0]
        assert torch.all(probs.triu(diagonal=1) == 0)  # no token sees a later one


@pytest.mark.parametrize(
    "module, alias_dir",
    [("uni2ts.model.moirai_moe", "moe_dir"), ("uni2ts.model.moirai2", "moirai2_dir")],
)
def test_without_uni2ts_2_loading_says_how_to_install_it(module, alias_dir, request, monkeypatch):
    directory = request.getfixturevalue(alias_dir)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps uni2ts==2\.0\.0"):
        load_adapter(str(directory))


@pytest.mark.parametrize("family", ["moe", "moirai2"])
def test_search_export_and_evaluate(
    family, moe_dir, moirai2_dir, tiny_csv, studies, tmp_path, capsys
):
    model_dir, module_class = {
        "moe": (moe_dir, MoiraiMoEModule),
        "moirai2": (moirai2_dir, Moirai2Module),
    }[family]
    # both roll out: Moirai-MoE 2 passes of 1 patch, Moirai 2.0 2 passes of up to 2 patches
    horizon = {"moe": 16, "moirai2": 24}[family]
    export, metadata = family_round_trip(
        model_dir, tiny_csv, tmp_path, capsys, patch_size=8, horizon=horizon, num_samples=10
    )
    reloaded = module_class.from_pretrained(str(export), strict=True)
    assert len(reloaded.encoder.layers) == len(metadata["keep"]) < 4
