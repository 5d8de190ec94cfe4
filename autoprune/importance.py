"""Layer importance scores ("priors"): small functions registered by name, higher = more
important. Every method but `ablation` reads one shared calibration forward pass, captured with
forward hooks on the layers (and, for `few-layer`, each layer's attention probabilities);
`ablation` costs one evaluation per layer. Where a model's layers form several chains of hidden
states (`Adapter.layer_groups`), every comparison stays within one.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from autoprune.data import Windows, load_series
from autoprune.errors import UnknownNameError
from autoprune.evaluate import Setting, resolve_device
from autoprune.models import Adapter, load_adapter
from autoprune.registry import Registry

# the one-pass methods; `ablation` (L + 1 passes) is asked for by name apart
METHODS: Registry[Callable[..., np.ndarray]] = Registry("importance method")
NEEDS_ATTENTION = {"few-layer"}


@dataclass
class Capture:
    """Hidden states h[0..L] (h[i + 1] leaves layer i, and h[i] enters it unless layer i
    starts a group other than the first), each (B, T, d), and the attention probabilities of
    each layer, (B, heads, T, T), when asked for. `groups` are the layer groups (empty: one
    group of all layers) and `entries` the input of each later group's first layer."""

    hidden: list[torch.Tensor]
    attention: list[torch.Tensor]
    groups: tuple[range, ...] = ()
    entries: dict[int, torch.Tensor] = field(default_factory=dict)

    def chains(self) -> list[list[torch.Tensor]]:
        """Per group, the hidden states entering its first layer and leaving each layer."""
        groups = self.groups or (range(len(self.hidden) - 1),)
        return [
            [
                self.entries.get(g.start, self.hidden[g.start]),
                *self.hidden[g.start + 1 : g.stop + 1],
            ]
            for g in groups
            if len(g)
        ]


def _per_group(c: Capture, method: Callable[[list[torch.Tensor]], list[float]]) -> np.ndarray:
    """A method's scores computed on each group's chain, in layer order: no comparison reaches
    across groups (Chronos-Bolt's decoder reads a start token, not the encoder's output)."""
    return np.array([value for chain in c.chains() for value in method(chain)])


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden state a layer takes or gives: the first positional argument or
    `hidden_states=`, and the first element when a layer returns a tuple or a ModelOutput."""
    value = args[0] if args else kwargs["hidden_states"]
    while isinstance(value, tuple | list | Mapping):  # a transformers ModelOutput is a Mapping
        value = next(iter(value.values())) if isinstance(value, Mapping) else value[0]
    return value.detach()


@torch.no_grad()
def capture(
    adapter: Adapter,
    model: nn.Module,
    windows: Windows,
    horizon: int,
    patch_size: int,
    attention: bool = False,
) -> Capture:
    """One forward pass through the adapter's own inference path, read with forward hooks."""
    layers = adapter.layers(model)
    inputs: list[torch.Tensor | None] = [None] * len(layers)
    outputs: list[torch.Tensor | None] = [None] * len(layers)
    probs: list[torch.Tensor] = []
    with ExitStack() as stack:
        for i, layer in enumerate(layers):
            pre = layer.register_forward_pre_hook(
                lambda m, args, kwargs, i=i: inputs.__setitem__(i, _hidden(args, kwargs)),
                with_kwargs=True,
            )
            post = layer.register_forward_hook(
                lambda m, args, out, i=i: outputs.__setitem__(i, _hidden((out,), {}))
            )
            stack.callback(pre.remove)
            stack.callback(post.remove)
        if attention:
            stack.enter_context(adapter.attention_probabilities(probs))
        device = next(model.parameters()).device
        adapter.forward(model, torch.as_tensor(windows.past, device=device), horizon, patch_size)
    groups = adapter.layer_groups(model)
    hidden = [inputs[0], *outputs]
    entries = {g.start: inputs[g.start].float() for g in groups if len(g) and g.start > 0}
    return Capture([h.float() for h in hidden], probs, groups, entries)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8)


@METHODS.register("bi")
def block_influence(c: Capture) -> np.ndarray:
    """ShortGPT's block influence (Men et al. 2024): 1 - mean cosine(input, output) of a block."""
    return _per_group(
        c, lambda h: [1 - _cos(h[i], h[i + 1]).mean().item() for i in range(len(h) - 1)]
    )


@METHODS.register("angular")
def angular_distance(c: Capture, n: int = 1) -> np.ndarray:
    """Gromov et al. 2024: angular distance arccos(cos)/pi between the input of block i and of
    block i+n, averaged over all tokens, since encoders have no causal last token. A layer
    scores the mean distance of the n-windows that contain it."""

    def group(hidden: list[torch.Tensor]) -> list[float]:
        layers = len(hidden) - 1
        width = max(1, min(n, layers))
        windows = [
            (torch.arccos(_cos(hidden[j], hidden[j + width]).clamp(-1, 1)) / math.pi).mean().item()
            for j in range(layers - width + 1)
        ]
        return [
            np.mean([windows[j] for j in range(max(0, i - width + 1), min(i, layers - width) + 1)])
            for i in range(layers)
        ]

    return _per_group(c, group)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations (tokens, features); 0 where either is constant over
    the tokens (a decoder's start token is the same for every window), which shares nothing
    measurable with the other."""
    x = x.reshape(-1, x.shape[-1]).double()
    y = y.reshape(-1, y.shape[-1]).double()
    if (x == x[:1]).all() or (y == y[:1]).all():
        return 0.0
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return (cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y))).item()


@METHODS.register("cka")
def cka(c: Capture) -> np.ndarray:
    """1 - linear CKA between a block's input and output (Wilinski et al. 2025): redundant
    blocks score low; a block whose input is constant (a decoder's start token) scores 1."""
    return _per_group(c, lambda h: [1 - linear_cka(h[i], h[i + 1]) for i in range(len(h) - 1)])


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def attention_diversity(probs: torch.Tensor, tau: float = 1.0) -> float:
    """Mean row entropy / log T of one layer's attention, after keeping each row's top-tau
    probability mass (tau = 1 keeps everything)."""
    p = probs.double().clamp_min(0)
    tokens = p.shape[-1]
    if tokens < 2:
        return 0.0
    if tau < 1.0:
        ordered, index = p.sort(dim=-1, descending=True)
        keep = (ordered.cumsum(-1) - ordered) < tau
        p = torch.zeros_like(p).scatter(-1, index, ordered * keep)
        p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    return (entropy.mean() / math.log(tokens)).item()


@METHODS.register("few-layer")
def few_layer(
    c: Capture,
    alpha: float = 0.5,
    k: int = 2,
    lam: float = 0.5,
    tau: float = 0.9,
    exempt_ends: bool = False,
) -> np.ndarray:
    """A RECONSTRUCTION of Qiu et al. (arXiv 2511.07237), whose exact formula is not public:
    representation shift over the k following layers with decay alpha, plus lam times
    `attention_diversity` (top-tau mass), both min-max normalised over all layers;
    `exempt_ends` pins each group's first and last layer to the top score. Knobs and defaults
    are ours."""
    layers = len(c.hidden) - 1

    def group(hidden: list[torch.Tensor]) -> list[float]:
        shift = []
        for i in range(len(hidden) - 1):
            reach = range(1, min(k, len(hidden) - 1 - i) + 1)
            weights = [alpha ** (j - 1) for j in reach]
            shifts = [1 - _cos(hidden[i], hidden[i + j]).mean().item() for j in reach]
            shift.append(float(np.dot(weights, shifts) / sum(weights)))
        return shift

    shift = _per_group(c, group)
    diversity = (
        np.array([attention_diversity(a, tau) for a in c.attention])
        if c.attention
        else np.zeros(layers)
    )
    score = _minmax(shift) + lam * _minmax(diversity)
    if exempt_ends:
        ends = {i for g in (c.groups or (range(layers),)) if len(g) for i in (g.start, g.stop - 1)}
        score[sorted(ends)] = score.max() + 1e-6
    return score


@torch.no_grad()
def ablation(
    adapter: Adapter, model: nn.Module, windows: Windows, horizon: int, patch_size: int
) -> np.ndarray:
    """Validation NLL increase when each layer alone is dropped: L + 1 forward passes."""
    device = next(model.parameters()).device
    past = torch.as_tensor(windows.past, device=device)
    future = torch.as_tensor(windows.future, device=device)
    staged = adapter.staged(model, past, horizon, patch_size)
    layers = adapter.layers(model)
    start = staged.embed()

    def nll(skip: int | None) -> float:
        hidden = start
        for i, layer in enumerate(layers):
            if i != skip:
                hidden = staged.apply(layer, hidden)
        return staged.mean_and_nll(hidden, future)[1].mean().item()

    full = nll(None)
    return np.array([nll(i) - full for i in range(len(layers))])


def top_k(scores: Sequence[float], k: int) -> tuple[int, ...]:
    """The k highest-scoring layers (ties: the earlier layer), as a sorted keep set."""
    ranked = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return tuple(sorted(int(i) for i in ranked[:k]))


def all_methods() -> list[str]:
    """Every importance method: the one-pass ones (`METHODS`), then `ablation` (L + 1 passes)."""
    return [*METHODS, "ablation"]


def check_method(name: str) -> str:
    known = all_methods()
    if name not in known:
        raise UnknownNameError(f"unknown importance method {name!r}; known: {', '.join(known)}")
    return name


def scores(
    methods: Sequence[str],
    adapter: Adapter,
    model: nn.Module,
    calibration: Windows,
    validation: Windows,
    horizon: int,
    patch_size: int,
    knobs: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Scores of several methods, higher = more important, deterministic for fixed windows.
    Every method but `ablation` reads the same single calibration pass, so asking for all of
    them costs one forward. `knobs` (e.g. few-layer's alpha, k, lam, tau, exempt_ends) go to
    the methods that take them; a knob none of the asked-for methods takes is refused."""
    for method in methods:
        check_method(method)
    knobs = dict(knobs or {})
    takes = {
        m: set(inspect.signature(METHODS[m]).parameters) - {"c"} for m in methods if m in METHODS
    }
    unknown = sorted(set(knobs) - set().union(*takes.values()))
    if unknown:
        offered = ", ".join(f"{m}: {', '.join(sorted(p)) or 'none'}" for m, p in takes.items())
        raise UnknownNameError(
            f"no asked-for method takes the knob {unknown[0]!r}; "
            f"knobs by method: {offered or 'none'}"
        )
    result: dict[str, np.ndarray] = {}
    if takes:
        c = capture(
            adapter,
            model,
            calibration,
            horizon,
            patch_size,
            attention=bool(NEEDS_ATTENTION & set(takes)),
        )
        for method, params in takes.items():
            result[method] = METHODS[method](c, **{k: v for k, v in knobs.items() if k in params})
    if "ablation" in methods:
        result["ablation"] = ablation(adapter, model, validation, horizon, patch_size)
    return {method: result[method] for method in methods}


def score_model(
    model: str,
    dataset: str,
    data_options: Mapping[str, str | None],
    setting: tuple[int | None, int | None, int | None],
    method: str | None = None,
    calib_windows: int | None = None,
    knobs: Mapping[str, float] | None = None,
    device: str = "auto",
) -> dict:
    """`autoprune score`: one method's (or every method's) layer scores of a model on a dataset's
    train windows, as plain data, with the seconds each pass took. `setting`: context length,
    horizon and patch size (None = the model's defaults for the dataset)."""
    methods = [check_method(method)] if method else all_methods()
    series = load_series(dataset, **data_options)
    adapter = load_adapter(model)
    adapter.model.to(resolve_device(device))
    resolved = Setting.for_series(series, adapter, *setting)
    calibration = series.eval_windows(
        "train", resolved.context_length, resolved.horizon, calib_windows
    )
    validation = series.eval_windows("val", resolved.context_length, resolved.horizon, 256)
    knobs = dict(knobs or {})
    one_pass = [m for m in methods if m != "ablation"]
    # timed apart: every method but ablation shares one calibration pass, ablation costs L + 1;
    # knobs go with the shared pass, or to ablation alone, which refuses them
    groups = {
        f"one calibration pass ({', '.join(one_pass)})": (one_pass, knobs),
        f"ablation ({adapter.num_layers + 1} validation passes)": (
            [m for m in methods if m == "ablation"],
            {} if one_pass else knobs,
        ),
    }
    values, seconds = {}, {}
    for label, (group, group_knobs) in groups.items():
        if group:
            start = time.perf_counter()
            values |= scores(
                group,
                adapter,
                adapter.model,
                calibration,
                validation,
                resolved.horizon,
                resolved.patch_size,
                group_knobs,
            )
            seconds[label] = round(time.perf_counter() - start, 3)
    return {
        "model": model,
        "dataset": series.name,
        "calibration_windows": len(calibration),
        "knobs": knobs,
        "methods": {m: [float(v) for v in values[m]] for m in methods},
        "seconds": seconds,
    }
