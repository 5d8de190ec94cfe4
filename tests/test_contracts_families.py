"""The contract every model family keeps, written once and run for each family on a tiny random
model (tests/_families.py builds them as each family's test file does):

a. `prune(keep)` returns a new model with the kept layers; the loaded model's weights, configs
   and depth stay as they were, whatever is then done to the pruned copy;
b. a pruned (and changed) model saved by the adapter reloads strictly through the family's own
   library (uni2ts, momentfm, transformers, chronos) with the same weights and exactly the same
   forecasts, and autoprune's own `load_adapter` reads it back with the same forecasts too;
c. the staged pass (what importance scores, the zero-shot screen and latency run), over a keep
   set of the loaded model's layers, is the library's own forward of the model pruned to it;
d. `params(keep)` is the exact parameter count of the pruned model, `params()` of the model.

Each family says how its library is called in one `Family` entry; its test file keeps only what
that family alone has (bias hand-over, router centroids, refusals, published counts, losses)."""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from autoprune.models import FAMILIES as REGISTRY
from autoprune.models import load_adapter
from autoprune.models._base import Adapter, KeepSet, Staged
from tests._families import (
    BOLT_STEPS,
    GPT4TS_HORIZON,
    MOIRAI2_PATCH,
    MOMENT_HORIZON,
    chronos_series,
    gpt4ts_windows,
    moe_first_step,
    moirai2_windows,
    moirai_past,
    moment_past,
    momentfm_forecast,
    momentfm_reload,
    port_forecast,
    timesfm_windows,
    tiny_bolt,
    tiny_chronos2,
)

Outputs = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Case:
    """A window the staged pass is checked on: past (B, context), horizon and patch size, and
    the library call that forecasts it where it is not the family's usual one."""

    name: str
    past: torch.Tensor
    horizon: int
    patch: int
    library: Callable[[Adapter, nn.Module, Case], Outputs] | None = None


@dataclass(frozen=True)
class Family:
    name: str
    requires: tuple[str, ...]  # "module" or "module:attribute" of the family's library
    adapter: Callable[[Callable[[str], Path]], Adapter]  # from conftest.family_checkpoint
    depth: Callable[[nn.Module], int]  # the depth the model's config states
    # the library's own load of a saved directory; asserts that no tensor is missing or left
    reload: Callable[[Path], nn.Module]
    forecast: Callable[[Adapter, nn.Module], torch.Tensor]  # the library's forecast (b)
    cases: tuple[Case, ...]  # windows the staged pass is checked on (c)
    library: Callable[[Adapter, nn.Module, Case], Outputs]  # the library's forward (c)
    read: Callable[[Staged, torch.Tensor, Case], Outputs]  # the staged pass's same outputs (c)
    atol: tuple[float, ...] = (1e-5,)  # per output of `library`
    keeps: tuple[KeepSet, ...] = ((2, 0), (1, 3), (3,))  # pruned and counted (a, d)
    saved_keeps: tuple[KeepSet, ...] = ((0, 2), (1, 3))  # saved and reloaded (b)
    staged_keeps: tuple[KeepSet, ...] = ((0, 2), (1, 3))  # run staged, besides all layers (c)
    windows: tuple[int, int] | None = None  # set_windows(context, horizon) after loading
    saved: Callable[[nn.Module], nn.Module] = lambda model: model  # what `reload` reads of it


# --- how each family's library is called ------------------------------------------------------


def _quiet_uni2ts(module: str, name: str) -> Callable[[Path], nn.Module]:
    def reload(directory: Path) -> nn.Module:
        module_class = getattr(importlib.import_module(module), name)
        with contextlib.redirect_stdout(io.StringIO()):
            return module_class.from_pretrained(str(directory), strict=True).eval()

    return reload


def _transformers(module: str, name: str, **kwargs) -> Callable[[Path], nn.Module]:
    def reload(directory: Path) -> nn.Module:
        model_class = getattr(importlib.import_module(module), name)
        model, info = model_class.from_pretrained(
            str(directory), output_loading_info=True, **kwargs
        )
        wrong = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        assert not any(wrong.values()), wrong
        return model.eval()

    return reload


def _gpt2_backbone(directory: Path) -> nn.Module:
    """transformers' own GPT2Model reads the backbone of a GPT4TS checkpoint: nothing missing,
    and only GPT4TS's patch embedding and head left over."""
    from transformers import GPT2Model

    from autoprune.models.gpt4ts import HEAD_PREFIX

    backbone, info = GPT2Model.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info.get("mismatched_keys")
    head = ("head.bias", "head.weight", "patch_embedding.bias", "patch_embedding.weight")
    assert sorted(info["unexpected_keys"]) == sorted(HEAD_PREFIX + k for k in head)
    return backbone.eval()


def _moirai_mean(adapter, model, case) -> Outputs:
    """MoiraiModule.forward's predictive mean of the horizon, the patch the window asks for
    read from its (wider) head."""
    packed, patch, first = adapter._pack(model, case.past, case.horizon, case.patch)
    mean = model(*packed, patch).mean[:, first:, : case.patch]
    return (mean.flatten(1)[:, : case.horizon],)


def _moirai_staged_mean(staged, hidden, case) -> Outputs:
    return (staged.distribution(hidden).mean.flatten(1)[:, : case.horizon],)


def _moe_first_step(adapter, model, case) -> Outputs:
    """The distribution of the first horizon patch, as MoiraiMoEForecast samples it: its mean
    and the log-density of a value every mixture component can score."""
    distr, last = moe_first_step(adapter, model, case.past, case.horizon)
    value = case.past[:, -1, None, None].expand(distr.batch_shape)
    return distr.mean[:, last], distr.log_prob(value)[:, last]


def _moe_staged_first_step(staged, hidden, case) -> Outputs:
    ours = staged.distribution(hidden)
    value = case.past[:, -1, None, None].expand(-1, 1, MOIRAI2_PATCH)
    return ours.mean[:, 0], ours.log_prob(value)[:, 0]


def _moirai2_first_step(adapter, model, case) -> Outputs:
    """The quantiles of the first num_predict_token patches, as Moirai2Forecast returns them
    when the horizon fits in one step."""
    from uni2ts.model.moirai2 import Moirai2Forecast

    from autoprune.models.moirai2 import _past_inputs

    step = case.patch * model.num_predict_token
    forecaster = Moirai2Forecast(
        prediction_length=min(case.horizon, step), target_dim=1, feat_dynamic_real_dim=0,
        past_feat_dynamic_real_dim=0, context_length=case.past.shape[1], module=model,
    )  # fmt: skip
    return (forecaster(*_past_inputs(case.past)),)


def _bolt_pipeline(adapter, model, case) -> Outputs:
    """ChronosBoltPipeline.predict, autoregressive past the model's prediction_length."""
    from chronos.chronos_bolt import ChronosBoltPipeline

    return (ChronosBoltPipeline(model).predict(case.past, prediction_length=case.horizon),)


def _chronos2_pipeline(adapter, model, case) -> Outputs:
    from chronos.chronos2 import Chronos2Pipeline

    quantiles = Chronos2Pipeline(model).predict(list(case.past), prediction_length=case.horizon)
    return (torch.cat(quantiles),)


def _chronos2_forward(adapter, model, case) -> Outputs:
    patches = math.ceil(case.horizon / model.chronos_config.output_patch_size)
    return (model(case.past, num_output_patches=patches).quantile_preds[..., : case.horizon],)


def _quantile_preds(adapter, model, case) -> Outputs:
    """The model's own forward: one pass of prediction_length steps."""
    return (model(case.past).quantile_preds[..., : case.horizon],)


def _port(adapter, model, case) -> Outputs:
    """The TimesFM port's forward: its quantile channels and its point forecast."""
    port = port_forecast(model, case.past)
    return port.full_predictions[..., 1:].transpose(1, 2), port.mean_predictions


def _timesfm_staged(staged, hidden, case) -> Outputs:
    ours = staged.distribution(hidden)
    return ours.quantiles, ours.point


def _distribution(staged, hidden, case) -> Outputs:
    return (staged.distribution(hidden),)


def _hub_depth(model: nn.Module) -> int:
    return model._hub_mixin_config["num_layers"]


def _seeded(num_samples: int, seed: int, past: torch.Tensor, horizon: int, patch: int):
    """adapter.forecast of a fixed window with a fixed seed: sampling families draw the same
    paths from the same distribution."""

    def forecast(adapter: Adapter, model: nn.Module) -> torch.Tensor:
        return adapter.forecast(model, past, horizon, patch, num_samples=num_samples, seed=seed)

    return forecast


def _tiny(family: str, build) -> Callable[[Callable[[str], Path]], Adapter]:
    """The family's adapter around a tiny model built in memory (as the Chronos tests do)."""

    def adapter(_checkpoint) -> Adapter:
        module, name = REGISTRY[family].adapter.split(":")
        return getattr(importlib.import_module(module), name)(build(), "test")

    return adapter


def _loaded(family: str) -> Callable[[Callable[[str], Path]], Adapter]:
    """load_adapter of the family's saved tiny checkpoint (detection included)."""
    return lambda checkpoint: load_adapter(str(checkpoint(family)))


MOE_CASES = (
    Case("within-one-step", moirai2_windows(horizon=6)[0], 6, MOIRAI2_PATCH),
    Case("several-steps", moirai2_windows(horizon=20)[0], 20, MOIRAI2_PATCH),
)
CHRONOS_PAST = chronos_series()
# Chronos-Bolt's layers 0-3 are encoder blocks, 4-5 decoder blocks: keep sets that drop either
# stack's block 0 (its position bias is handed over) or every block of a stack
BOLT_KEEPS = (
    (1, 3), (0, 2), (3,), (1, 5), (4, 5), (5,), (0, 1, 2, 3), (0, 2, 4), (1, 2, 5), (0, 1), (4,),
    (2, 4, 5), (1, 3, 5), (0, 2, 5), (1, 4), (2,),
)  # fmt: skip
GPT4TS_EMBEDS = torch.randn(3, 9, 32, generator=torch.Generator().manual_seed(0))

FAMILIES = [
    Family(
        "moirai",
        requires=("uni2ts",),
        adapter=_loaded("moirai"),
        depth=_hub_depth,
        reload=_quiet_uni2ts("uni2ts.model.moirai", "MoiraiModule"),
        forecast=_seeded(30, 3, moirai_past(), 16, 16),
        # patch 8 is narrower than the 16-wide head: the staged pass must slice it
        cases=(
            Case("patch-8", moirai_past(), 20, 8),
            Case("patch-16", moirai_past(), 20, 16),
        ),
        library=_moirai_mean,
        read=_moirai_staged_mean,
    ),
    Family(
        "moirai-moe",
        requires=("uni2ts.model.moirai_moe",),
        adapter=_loaded("moirai-moe"),
        depth=_hub_depth,
        reload=_quiet_uni2ts("uni2ts.model.moirai_moe", "MoiraiMoEModule"),
        forecast=_seeded(5, 4, moirai2_windows()[0], 20, MOIRAI2_PATCH),
        cases=MOE_CASES,
        library=_moe_first_step,
        read=_moe_staged_first_step,
        atol=(1e-5, 1e-4),
        staged_keeps=((0, 3), (1, 2)),
    ),
    Family(
        "moirai-2",
        requires=("uni2ts.model.moirai2",),
        adapter=_loaded("moirai-2"),
        depth=_hub_depth,
        reload=_quiet_uni2ts("uni2ts.model.moirai2", "Moirai2Module"),
        forecast=_seeded(5, 4, moirai2_windows()[0], 20, MOIRAI2_PATCH),
        cases=MOE_CASES,
        library=_moirai2_first_step,
        read=_distribution,
        staged_keeps=((0, 3), (1, 2)),
    ),
    Family(
        "chronos-bolt",
        requires=("chronos",),
        adapter=_tiny("chronos-bolt", tiny_bolt),
        depth=lambda model: model.config.num_layers + model.config.num_decoder_layers,
        reload=_transformers(
            "chronos.chronos_bolt", "ChronosBoltModelForForecasting", use_safetensors=True
        ),
        forecast=lambda adapter, model: model(CHRONOS_PAST).quantile_preds,
        cases=(
            Case("pipeline-past-one-pass", CHRONOS_PAST, 20, 16, _bolt_pipeline),
            Case("forward-one-pass", CHRONOS_PAST, BOLT_STEPS, 16, _quantile_preds),
        ),
        library=_quantile_preds,
        read=_distribution,
        keeps=BOLT_KEEPS,
        # encoder blocks only dropped; both stacks' block 0; no decoder block; no encoder block
        saved_keeps=((1, 3), (1, 3, 5), (0, 2), (5,)),
        staged_keeps=((0, 2, 5), (1, 4), (0, 1, 2, 3), (1, 3), (2,), (4, 5), (5,)),
    ),
    Family(
        "chronos-2",
        requires=("chronos",),
        adapter=_tiny("chronos-2", tiny_chronos2),
        depth=lambda model: model.config.num_layers,
        reload=_transformers("chronos.chronos2", "Chronos2Model", use_safetensors=True),
        forecast=lambda adapter, model: model(CHRONOS_PAST).quantile_preds,
        cases=(
            Case("pipeline", CHRONOS_PAST, 20, 16, _chronos2_pipeline),
            Case("forward", CHRONOS_PAST, 20, 16, _chronos2_forward),
        ),
        library=_chronos2_forward,
        read=_distribution,
        staged_keeps=((1, 3), (0,)),
    ),
    Family(
        "timesfm",
        requires=("transformers:TimesFm2_5ModelForPrediction",),
        adapter=_loaded("timesfm"),
        depth=lambda model: model.config.num_hidden_layers,
        reload=_transformers("transformers", "TimesFm2_5ModelForPrediction"),
        forecast=lambda adapter, model: port_forecast(model, timesfm_windows()[0]).full_predictions,
        cases=(
            Case("padded-context", timesfm_windows(context=50)[0], 16, 8),
            # the port clamps the quantiles of a positive series at zero
            Case("positive-series", timesfm_windows(context=64, offset=40.0)[0], 16, 8),
        ),
        library=_port,
        read=_timesfm_staged,
        atol=(1e-5, 1e-5),
    ),
    Family(
        "moment",
        requires=("momentfm",),
        adapter=_loaded("moment"),
        depth=lambda model: model._hub_mixin_config["t5_config"]["num_layers"],
        reload=momentfm_reload,
        forecast=lambda adapter, model: momentfm_forecast(model, moment_past()),
        # MOMENT reads 512 steps: shorter contexts are left-padded and masked, longer cut
        cases=tuple(
            Case(f"context-{n}", moment_past(context=n), MOMENT_HORIZON, 8) for n in (100, 512, 700)
        ),
        library=lambda adapter, model, case: (momentfm_forecast(model, case.past),),
        read=_distribution,
        windows=(512, MOMENT_HORIZON),  # a forecasting head for the horizon, before pruning
    ),
    Family(
        "gpt4ts",
        requires=("transformers",),
        adapter=_loaded("gpt4ts"),
        depth=lambda model: getattr(model, "backbone", model).config.n_layer,
        reload=_gpt2_backbone,
        forecast=lambda adapter, backbone: backbone(inputs_embeds=GPT4TS_EMBEDS).last_hidden_state,
        cases=(Case("window", gpt4ts_windows()[0], GPT4TS_HORIZON, 16),),
        library=lambda adapter, model, case: (model(case.past),),  # GPT4TS.forward: GPT2Model
        read=_distribution,
        windows=(64, GPT4TS_HORIZON),
        saved=lambda model: model.backbone,
    ),
]


@pytest.fixture(params=FAMILIES, ids=lambda family: family.name)
def family(request) -> Family:
    for requirement in request.param.requires:
        module, _, attribute = requirement.partition(":")
        imported = pytest.importorskip(module, reason=f"{request.param.name}'s library")
        if attribute and not hasattr(imported, attribute):
            pytest.skip(f"{module} has no {attribute}")
    return request.param


@pytest.fixture
def adapter(family, family_checkpoint) -> Adapter:
    adapter = family.adapter(family_checkpoint)
    if family.windows is not None:
        adapter.set_windows(*family.windows)
    return adapter


def _configs(model: nn.Module) -> dict:
    """Every configuration the model carries, as plain data: the hub mixin's recorded
    constructor arguments and each module's `config` (transformers' and momentfm's)."""
    found = {"<hub mixin>": copy.deepcopy(getattr(model, "_hub_mixin_config", None))}
    for name, module in model.named_modules():
        config = getattr(module, "config", None)
        if hasattr(config, "to_dict"):
            found[name] = config.to_dict()
        elif config is not None:
            found[name] = copy.deepcopy(vars(config))
    return found


def _staged(adapter: Adapter, case: Case, keep: KeepSet) -> tuple[Staged, torch.Tensor]:
    """The staged pass over the loaded model's layers in `keep`, as the screen runs it."""
    staged = adapter.staged(adapter.model, case.past, case.horizon, case.patch)
    hidden = staged.embed()
    for i in keep:
        hidden = staged.apply(adapter.layers(adapter.model)[i], hidden)
    return staged, hidden


def test_prune_returns_a_new_model_and_leaves_the_loaded_one_untouched(family, adapter):
    loaded, depth = adapter.model, adapter.num_layers
    weights = {k: v.clone() for k, v in loaded.state_dict().items()}
    configs = _configs(loaded)
    for keep in family.keeps:
        pruned = adapter.prune(keep)
        assert pruned is not loaded
        kept = adapter.layers(pruned)
        assert len(kept) == family.depth(pruned) == len(keep), keep
        for layer, i in zip(kept, sorted(keep), strict=True):
            original = adapter.layers(loaded)[i]
            assert layer is not original
            copied = layer.state_dict()  # may hold more: a handed-over position bias
            assert all(torch.equal(copied[k], v) for k, v in original.state_dict().items()), i
        with torch.no_grad():  # what re-aligning the pruned copy does to its weights
            for parameter in pruned.parameters():
                parameter.add_(1.0)
    assert adapter.model is loaded
    assert adapter.num_layers == depth == family.depth(loaded) == len(adapter.layers(loaded))
    assert _configs(loaded) == configs
    after = loaded.state_dict()
    assert after.keys() == weights.keys()
    assert [k for k in weights if not torch.equal(after[k], weights[k])] == []


@pytest.mark.filterwarnings("ignore:We recommend keeping prediction length")
def test_saved_model_reloads_strictly_in_its_library_with_the_same_forecasts(
    family, adapter, tmp_path
):
    case = family.cases[0]
    for n, keep in enumerate(family.saved_keeps):
        pruned = adapter.prune(keep)
        # as re-alignment would: what reloads must be the pruned model's weights, not the
        # loaded model's
        first = next(adapter.layers(pruned)[0].parameters())
        noise = torch.randn(first.shape, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            first.add_(0.1 * noise)
        directory = tmp_path / f"keep{n}"
        adapter.save(pruned, directory)

        reloaded = family.reload(directory)
        assert family.depth(reloaded) == len(keep), keep
        saved, state = family.saved(pruned).state_dict(), reloaded.state_dict()
        assert state.keys() == saved.keys(), keep
        assert all(torch.equal(state[k], saved[k]) for k in saved), keep
        with torch.no_grad():
            expected = family.forecast(adapter, family.saved(pruned))
            assert torch.equal(family.forecast(adapter, reloaded), expected), keep

        # and autoprune's own load (detection included): the whole model, head and all
        again = load_adapter(str(directory))
        assert type(again) is type(adapter) and again.num_layers == len(keep)
        saved, state = pruned.state_dict(), again.model.state_dict()
        assert state.keys() == saved.keys(), keep
        assert all(torch.equal(state[k], saved[k]) for k in saved), keep
        with torch.no_grad():
            ours = family.read(*adapter.through(pruned, case.past, case.horizon, case.patch), case)
            theirs = family.read(
                *again.through(again.model, case.past, case.horizon, case.patch), case
            )
        assert all(torch.equal(a, b) for a, b in zip(theirs, ours, strict=True)), keep


@pytest.mark.filterwarnings("ignore:We recommend keeping prediction length")
@torch.no_grad()
def test_staged_pass_is_the_librarys_forward_of_the_pruned_model(family, adapter):
    everything = tuple(range(adapter.num_layers))
    for case in family.cases:
        library = case.library or family.library
        full = library(adapter, adapter.model, case)
        for keep in (everything, *family.staged_keeps):
            pruned = adapter.model if keep == everything else adapter.prune(keep)
            expected = full if keep == everything else library(adapter, pruned, case)
            ours = family.read(*_staged(adapter, case, keep), case)
            assert len(ours) == len(expected) == len(family.atol)
            for got, want, atol in zip(ours, expected, family.atol, strict=True):
                where = f"{case.name}, keep {keep}"
                torch.testing.assert_close(
                    got, want, atol=atol, rtol=1e-5, msg=lambda m, where=where: f"{where}: {m}"
                )
            if keep != everything:  # the keep set changes the forecast: the check has teeth
                assert not torch.allclose(expected[0], full[0], atol=1e-3), (case.name, keep)


def test_params_are_the_exact_counts_of_the_pruned_models(family, adapter):
    total = adapter.params()
    assert total == sum(p.numel() for p in adapter.model.parameters())
    assert adapter.params(range(adapter.num_layers)) == total
    for keep in family.keeps:
        pruned = adapter.prune(keep)
        assert adapter.params(keep) == sum(p.numel() for p in pruned.parameters()) < total, keep
