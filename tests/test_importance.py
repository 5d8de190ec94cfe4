import math

import numpy as np
import pytest
import torch

from autoprune.data import Windows
from autoprune.errors import UnknownNameError
from autoprune.importance import (
    METHODS,
    attention_diversity,
    capture,
    check_method,
    linear_cka,
    scores,
)
from autoprune.models import load_adapter
from autoprune.screen import all_keep_sets, applications, screen
from autoprune.space import parse_space


@pytest.fixture(scope="module")
def adapter(tiny_model_dir):
    return load_adapter(str(tiny_model_dir))


def windows(n=6, context=64, horizon=16, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(context + horizon)
    series = 5 + np.sin(t / 3)[None, :] + 0.2 * rng.normal(size=(n, t.size))
    return Windows(series[:, :context].astype(np.float32), series[:, context:].astype(np.float32))


def test_hooks_capture_every_layer_boundary(adapter):
    w = windows()
    c = capture(adapter, adapter.model, w, 16, 16)
    assert len(c.hidden) == adapter.num_layers + 1
    staged = adapter.staged(adapter.model, torch.as_tensor(w.past), 16, 16)
    with torch.no_grad():
        h = staged.embed()
        torch.testing.assert_close(c.hidden[0], h)
        for i, layer in enumerate(adapter.layers(adapter.model)):
            h = staged.apply(layer, h)
            torch.testing.assert_close(c.hidden[i + 1], h)


def test_attention_capture_is_eager_but_equal(adapter):
    w = windows()
    c = capture(adapter, adapter.model, w, 16, 16, attention=True)
    assert len(c.attention) == adapter.num_layers
    for probs in c.attention:
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    with torch.no_grad():
        plain = adapter.forward(adapter.model, torch.as_tensor(w.past), 16, 16).mean
        sink = []
        with adapter.attention_probabilities(sink):
            eager = adapter.forward(adapter.model, torch.as_tensor(w.past), 16, 16).mean
    torch.testing.assert_close(plain, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", [*METHODS, "ablation"])
def test_every_method_scores_every_layer_deterministically(adapter, method):
    calib, val = windows(seed=1), windows(seed=2)
    a = scores([method], adapter, adapter.model, calib, val, 16, 16)[method]
    b = scores([method], adapter, adapter.model, calib, val, 16, 16)[method]
    assert a.shape == (adapter.num_layers,) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_all_methods_share_one_calibration_pass(adapter, monkeypatch):
    import autoprune.importance as importance

    calib, val = windows(seed=1), windows(seed=2)
    alone = {m: scores([m], adapter, adapter.model, calib, val, 16, 16)[m] for m in METHODS}
    passes = []
    real = importance.capture
    monkeypatch.setattr(importance, "capture", lambda *a, **k: passes.append(1) or real(*a, **k))
    together = scores(list(METHODS), adapter, adapter.model, calib, val, 16, 16)
    assert len(passes) == 1
    for method in METHODS:  # the shared pass runs eager attention for few-layer: float noise
        np.testing.assert_allclose(together[method], alone[method], rtol=1e-5, atol=1e-6)


def test_knobs_reach_their_method_and_unknown_knobs_are_refused(adapter):
    calib, val = windows(seed=1), windows(seed=2)
    plain = scores(["few-layer"], adapter, adapter.model, calib, val, 16, 16)["few-layer"]
    pinned = scores(
        ["few-layer"], adapter, adapter.model, calib, val, 16, 16, {"exempt_ends": True}
    )["few-layer"]
    assert pinned[0] == pinned[-1] == pinned.max() and not np.array_equal(plain, pinned)
    with pytest.raises(UnknownNameError, match="'alpha'.*bi: none"):
        scores(["bi"], adapter, adapter.model, calib, val, 16, 16, {"alpha": 0.5})


def test_block_influence_by_hand(adapter):
    w = windows()
    c = capture(adapter, adapter.model, w, 16, 16)
    cos = torch.nn.functional.cosine_similarity(c.hidden[2], c.hidden[3], dim=-1)
    assert METHODS["bi"](c)[2] == pytest.approx(1 - cos.mean().item(), rel=1e-6)
    angular = METHODS["angular"](c)
    assert angular[2] == pytest.approx(
        (torch.arccos(cos.clamp(-1, 1)) / math.pi).mean().item(), rel=1e-5
    )


def test_linear_cka_properties():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x + 1) == pytest.approx(1.0)  # invariant to scale and shift
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    assert linear_cka(x, x @ q) == pytest.approx(1.0)  # and to rotations
    y = torch.randn(200, 8, generator=torch.Generator().manual_seed(2))
    assert linear_cka(x, y) < 0.2


def test_attention_diversity_bounds():
    uniform = torch.full((1, 1, 4, 4), 0.25)
    peaked = torch.eye(4).view(1, 1, 4, 4)
    assert attention_diversity(uniform) == pytest.approx(1.0)
    assert attention_diversity(peaked) == pytest.approx(0.0, abs=1e-9)
    assert attention_diversity(uniform, tau=0.5) == pytest.approx(math.log(2) / math.log(4))


def test_ablation_matches_screening_the_layer_out(adapter):
    val = windows(seed=3)
    drop = scores(["ablation"], adapter, adapter.model, val, val, 16, 16)["ablation"]
    layers = adapter.num_layers
    sets = [tuple(range(layers))] + [
        tuple(j for j in range(layers) if j != i) for i in range(layers)
    ]
    nll = {k: v["nll"] for k, v in screen(adapter, adapter.model, val, 16, 16, 1, sets).items()}
    for i in range(layers):
        assert drop[i] == pytest.approx(nll[sets[i + 1]] - nll[sets[0]], abs=1e-5)


def test_screen_equals_evaluating_the_pruned_model(adapter):
    w = windows(seed=4)
    space = parse_space({"model": "t", "num_layers": 4}, "t")
    sets = all_keep_sets(space)
    assert len(sets) == space.size == 14
    result = screen(adapter, adapter.model, w, 16, 16, 1, sets)
    for keep in [(0,), (1, 3), (0, 1, 2)]:
        pruned = adapter.prune(keep)
        with torch.no_grad():
            mean = adapter.forward(pruned, torch.as_tensor(w.past), 16, 16).mean.flatten(1)
        scale = np.mean(np.abs(np.diff(w.past, axis=1)), axis=1)
        mase = np.mean(np.abs(w.future - mean[:, :16].numpy()).mean(1) / scale)
        assert result[keep]["mase"] == pytest.approx(mase, rel=1e-4)


def test_screen_batches_heads_without_changing_a_number(adapter):
    w = windows(seed=5)
    sets = all_keep_sets(parse_space({"model": "t", "num_layers": 4}, "t"))  # 8 + a short 6
    batched = screen(adapter, adapter.model, w, 16, 16, 1, sets)
    alone = screen(adapter, adapter.model, w, 16, 16, 1, sets, batch=1)
    assert batched.keys() == alone.keys() == set(sets)
    for keep in sets:
        assert batched[keep] == pytest.approx(alone[keep], rel=1e-6)


def test_unknown_method():
    with pytest.raises(UnknownNameError, match="importance method"):
        check_method("magic")


def test_the_screen_walk_applies_each_layer_of_a_shared_prefix_once():
    """`applications` counts what `screen` spends, so a projection of its cost is right: every
    keep set of an exhaustive pool adds one layer, a lone keep set all of its own."""
    sets = all_keep_sets(parse_space({"model": "t", "num_layers": 4}, "t"))
    assert applications([*sets, (0, 1, 2, 3)]).tolist() == [1] * 15
    assert applications([(1, 3), (0, 2, 3)]).tolist() == [3, 2]  # walked in order, no prefix
    assert applications([]).tolist() == []
