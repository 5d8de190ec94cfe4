"""Pretrain `moirai-tiny` from scratch on synthetic series (reproducible: fixed seed, CPU).

    python -m autoprune.models.pretrain_tiny --out autoprune/models/moirai_tiny

No real dataset is touched: every batch comes from `autoprune.data.synthetic`. Patch size,
context and horizon vary per batch so the model serves hourly, daily and weekly data alike.
`training.json` beside the checkpoint records settings, wall time and the loss curve.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from autoprune.data.synthetic import synthetic_batch
from autoprune.models._base import Adapter
from autoprune.models.moirai import MoiraiAdapter, _uni2ts
from autoprune.train import fit

CONFIG = dict(d_model=128, num_layers=12, patch_sizes=(16, 32, 64), max_seq_len=512)
PATCH_CHOICES = ((16, 0.3), (32, 0.5), (64, 0.2))
CONTEXTS = (96, 192, 256, 384, 512, 768)
HORIZONS = (24, 48, 96, 192)


def build_module(seed: int, num_layers: int = 12):
    from uni2ts.distribution import (
        LogNormalOutput,
        MixtureOutput,
        NegativeBinomialOutput,
        NormalFixedScaleOutput,
        StudentTOutput,
    )

    MoiraiModule = _uni2ts()[0]
    torch.manual_seed(seed)
    head = MixtureOutput(
        components=[
            StudentTOutput(),
            NormalFixedScaleOutput(),
            NegativeBinomialOutput(),
            LogNormalOutput(),
        ]
    )
    return MoiraiModule(
        distr_output=head,
        attn_dropout_p=0.0,
        dropout_p=0.0,
        scaling=True,
        **{**CONFIG, "num_layers": num_layers},
    )


def synthetic_batches(batch_size: int):
    sizes = [p for p, _ in PATCH_CHOICES]
    weights = [w for _, w in PATCH_CHOICES]

    def batches(rng: np.random.Generator):
        patch = int(rng.choice(sizes, p=weights))
        context = int(rng.choice(CONTEXTS))
        horizon = int(rng.choice(HORIZONS))
        past, future = synthetic_batch(rng, batch_size, context, horizon)
        return past, future, patch

    return batches


def arguments(description: str) -> argparse.ArgumentParser:
    """The pretraining settings every tiny model takes (`pretrain` reads them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12, help="12 for moirai-tiny, 8 for -8")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    adapter = MoiraiAdapter(build_module(args.seed, args.layers), "scratch")
    pretrain(
        adapter,
        synthetic_batches(args.batch_size),
        args,
        {"config": {**CONFIG, "num_layers": args.layers}},
    )


def pretrain(adapter: Adapter, batches, args: argparse.Namespace, described: dict) -> None:
    """Train `adapter`'s model from scratch on `batches` with `args`' steps, learning rate and
    seed, save it to `args.out`, and write `training.json` beside it: `described` (what the
    model is), the settings, the wall time and the loss every 100 steps."""
    model = adapter.model
    start = time.perf_counter()

    def log(step: int, loss: float) -> None:
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d}  loss {loss:.3f}  {time.perf_counter() - start:6.0f}s", flush=True
            )

    losses = fit(
        adapter,
        model,
        batches,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        warmup=200,
        weight_decay=0.1,
        on_step=log,
    )
    wall = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    adapter.save(model, args.out)
    (args.out / "README.md").unlink(missing_ok=True)  # the model card is written separately
    record = {
        **described,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "torch": torch.__version__,
        "wall_seconds": round(wall, 1),
        "loss_every_100_steps": [
            round(float(np.mean(losses[i : i + 100])), 4) for i in range(0, len(losses), 100)
        ],
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved to {args.out} after {wall:.0f}s")


if __name__ == "__main__":
    main()
