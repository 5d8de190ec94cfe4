"""The one training loop: pretraining `moirai-tiny` and every trial's re-alignment use it.

AdamW with linear warm-up and cosine decay, gradient clipping, and a hard stop on a non-finite
loss (a diverged re-alignment is a failed trial, never a silently bad one).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from autoprune.models import Adapter

BatchFn = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, int]]


class NonFiniteLoss(RuntimeError):
    """Training produced NaN or inf; the trial that hit it is recorded as failed."""


def cosine_lr(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def fit(
    adapter: Adapter,
    model: nn.Module,
    batches: BatchFn,
    steps: int,
    lr: float,
    seed: int,
    warmup: int | None = None,
    weight_decay: float = 0.01,
    clip: float = 1.0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` in place for `steps` steps; returns the per-step losses."""
    if steps <= 0:
        return []
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    warmup = max(1, steps // 10) if warmup is None else warmup
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: cosine_lr(s, steps, warmup))
    model.train()
    losses = []
    try:
        for step in range(steps):
            past, future, patch_size = batches(rng)
            loss = adapter.loss(
                model,
                torch.as_tensor(past, device=device),
                torch.as_tensor(future, device=device),
                patch_size,
            )
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"re-alignment loss became {loss.item()} at step {step}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
    finally:
        model.eval()
    return losses
