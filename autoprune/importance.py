"""Layer importance scores ("priors"): small functions registered by name, higher = more
important. Every method but `ablation` reads one calibration forward pass, captured with forward
hooks on the layers (and, for attention diversity, the attention probabilities of each layer);
`ablation` honestly costs one evaluation per layer.

Sources, and what is reconstructed rather than published:
- `bi`: ShortGPT's block influence, 1 - mean cosine(input, output) of a block (Men et al. 2024).
- `angular`: Gromov et al. 2024, angular distance arccos(cos)/pi between the input of block i
  and of block i+n; averaged over all tokens, since encoders have no causal last token. A layer
  scores the mean distance of the n-windows that contain it.
- `cka`: 1 - linear CKA between a block's input and output (Wilinski et al. 2025): redundant
  blocks score low.
- `few-layer`: a RECONSTRUCTION of Qiu et al. (arXiv 2511.07237), whose exact formula is not
  public: representation shift over the k following layers with decay alpha, plus lambda times
  attention diversity (mean row entropy of the attention maps / log T, after keeping each row's
  top-tau mass), both min-max normalised over layers; `exempt_ends` pins the first and last layer
  to the top score. Knobs and defaults are ours.
- `ablation`: increase in validation NLL when the layer alone is dropped (L+1 forward passes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from autoprune.data import Windows
from autoprune.errors import UnknownNameError
from autoprune.models import Adapter

METHODS: dict[str, Callable[..., np.ndarray]] = {}
NEEDS_ATTENTION = {"few-layer"}


def register(name: str):
    def decorator(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        METHODS[name] = fn
        return fn

    return decorator


@dataclass
class Capture:
    """Hidden states h[0..L] (h[i] enters layer i, h[i+1] leaves it), each (B, T, d), and the
    attention probabilities of each layer, (B, heads, T, T), when asked for."""

    hidden: list[torch.Tensor]
    attention: list[torch.Tensor]


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
    hidden = [inputs[0], *outputs]
    return Capture([h.float() for h in hidden], probs)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8)


@register("bi")
def block_influence(c: Capture) -> np.ndarray:
    return np.array(
        [1 - _cos(c.hidden[i], c.hidden[i + 1]).mean().item() for i in range(len(c.hidden) - 1)]
    )


@register("angular")
def angular_distance(c: Capture, n: int = 1) -> np.ndarray:
    layers = len(c.hidden) - 1
    n = max(1, min(n, layers))
    windows = [
        (torch.arccos(_cos(c.hidden[j], c.hidden[j + n]).clamp(-1, 1)) / math.pi).mean().item()
        for j in range(layers - n + 1)
    ]
    return np.array(
        [
            np.mean([windows[j] for j in range(max(0, i - n + 1), min(i, layers - n) + 1)])
            for i in range(layers)
        ]
    )


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    x = x.reshape(-1, x.shape[-1]).double()
    y = y.reshape(-1, y.shape[-1]).double()
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return (cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y))).item()


@register("cka")
def cka(c: Capture) -> np.ndarray:
    return np.array(
        [1 - linear_cka(c.hidden[i], c.hidden[i + 1]) for i in range(len(c.hidden) - 1)]
    )


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


@register("few-layer")
def few_layer(
    c: Capture,
    alpha: float = 0.5,
    k: int = 2,
    lam: float = 0.5,
    tau: float = 0.9,
    exempt_ends: bool = False,
) -> np.ndarray:
    layers = len(c.hidden) - 1
    shift = []
    for i in range(layers):
        reach = range(1, min(k, layers - i) + 1)
        weights = [alpha ** (j - 1) for j in reach]
        shifts = [1 - _cos(c.hidden[i], c.hidden[i + j]).mean().item() for j in reach]
        shift.append(float(np.dot(weights, shifts) / sum(weights)))
    diversity = (
        np.array([attention_diversity(a, tau) for a in c.attention])
        if c.attention
        else np.zeros(layers)
    )
    score = _minmax(np.array(shift)) + lam * _minmax(diversity)
    if exempt_ends:
        score[[0, -1]] = score.max() + 1e-6
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


def check_method(name: str) -> str:
    known = [*METHODS, "ablation"]
    if name not in known:
        raise UnknownNameError(f"unknown importance method {name!r}; known: {', '.join(known)}")
    return name


def score(
    method: str,
    adapter: Adapter,
    model: nn.Module,
    calibration: Windows,
    validation: Windows,
    horizon: int,
    patch_size: int,
    **knobs: float,
) -> np.ndarray:
    """Scores of one method, higher = more important; deterministic for fixed windows."""
    check_method(method)
    if method == "ablation":
        return ablation(adapter, model, validation, horizon, patch_size)
    c = capture(
        adapter, model, calibration, horizon, patch_size, attention=method in NEEDS_ATTENTION
    )
    return METHODS[method](c, **knobs)
