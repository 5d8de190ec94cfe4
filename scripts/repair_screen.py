"""A zero-shot screen with a linear repair, measured against an exhaustive table
(docs/search-efficiency.md).

The default screen scores a pruned model as it is. This one first repairs it in closed form:
per keep set, a ridge regression (fitted on training windows) from the pruned model's last
hidden state to the full model's, on the tokens the forecast head reads, added to the pruned
state; then the head's NLL and mean-forecast MASE on the screen's validation windows. Printed:
Spearman of each with the table's full-budget val MASE, overall and within equal size, beside
the table's own screens. `--out` writes the values per keep set (for a replay patch).

    python scripts/repair_screen.py studies/bench/truth-moirai-tiny-8-etth1.json [--out F.json]

Moirai only (its staged forward names the head's tokens); ~1-2 min per 8-layer table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from autoprune.bench.truth import correlations, load_truth, table_context
from autoprune.errors import AutoPruneError
from autoprune.metrics import seasonal_error
from autoprune.screen import SCREEN_WINDOWS, window_mase

TRAIN_WINDOWS = 256
RIDGE = 1e-2  # times the mean squared feature: the penalty of the repair's regression


def last_hidden(staged, embedded: torch.Tensor, layers, keep) -> torch.Tensor:
    hidden = embedded
    for layer in keep:
        hidden = staged.apply(layers[layer], hidden)
    return hidden


def with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)


@torch.no_grad()
def repaired(ctx, keeps) -> dict[tuple[int, ...], dict[str, float]]:
    adapter, series, setting = ctx.adapter, ctx.series, ctx.setting
    model, layers = adapter.model.eval(), adapter.layers(adapter.model)
    horizon, patch, context = setting.horizon, setting.patch_size, setting.context_length
    train = series.train_batch(np.random.default_rng(0), TRAIN_WINDOWS, context, horizon)
    val = series.eval_windows("val", context, horizon, SCREEN_WINDOWS)
    fit_on = adapter.staged(model, torch.as_tensor(train.past), horizon, patch)
    score_on = adapter.staged(model, torch.as_tensor(val.past), horizon, patch)
    fit_in, score_in = fit_on.embed(), score_on.embed()  # the same for every keep set
    heads = slice(score_on.first, None)  # the tokens the forecast head reads
    future = torch.as_tensor(val.future)
    scale = torch.as_tensor(seasonal_error(val.past, series.seasonality))
    everything = tuple(range(len(layers)))

    def rows(hidden):
        flat = hidden[:, heads].double()
        return flat.reshape(-1, flat.shape[-1])

    target = rows(last_hidden(fit_on, fit_in, layers, everything))
    result = {}
    for keep in keeps:
        x = rows(last_hidden(fit_on, fit_in, layers, keep))
        x1 = with_bias(x)
        penalty = RIDGE * (x1**2).sum() / x1.shape[1]
        gram = x1.T @ x1 + penalty * torch.eye(x1.shape[1], dtype=x.dtype)
        weights = torch.linalg.solve(gram, x1.T @ (target - x))
        hidden = last_hidden(score_on, score_in, layers, keep)
        v = rows(hidden)
        fixed = v + with_bias(v) @ weights
        hidden = hidden.clone()
        hidden[:, heads] = fixed.to(hidden.dtype).view(hidden[:, heads].shape)
        mean, nll = score_on.mean_and_nll(hidden, future)
        mase = window_mase(mean, future, scale).mean()
        result[keep] = {"rep_nll": nll.mean().item(), "rep_mase": mase.item()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path)
    parser.add_argument("--out", type=Path, help="write each keep set's repaired screen here")
    args = parser.parse_args()
    try:
        meta, rows = load_truth(args.truth)
    except AutoPruneError as error:
        parser.exit(2, f"repair_screen: {error}\n")
    if not meta["model"].startswith("moirai"):
        parser.exit(2, f"repair_screen: Moirai tables only, not {meta['model']}\n")
    torch.set_num_threads(1)
    values = repaired(table_context(args.truth, meta), [r["keep"] for r in rows])
    for row in rows:
        row |= values[row["keep"]]
    measured = correlations(rows, ("zs_nll", "zs_mase", "rep_nll", "rep_mase", "r10_mase"))
    for name, c in measured.items():
        within = c["within_size_weighted_mean"]
        print(f"{name:9s} overall {c['overall']:+.2f}  within size {within:+.2f}")
    if args.out:
        keyed = {" ".join(map(str, k)): v for k, v in values.items()}
        args.out.write_text(json.dumps({"truth": str(args.truth), "screen": keyed}, indent=1))


if __name__ == "__main__":
    main()
