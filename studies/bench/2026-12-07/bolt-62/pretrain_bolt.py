"""Pretrain a tiny Chronos-Bolt (4 encoder + 4 decoder T5 blocks) from scratch on synthetic
series, as `autoprune.models.pretrain_tiny` does for moirai-tiny: a model of another family that
no search rule was designed on (stop 62).

    python studies/bench/2026-12-07/bolt-62/pretrain_bolt.py --out /tmp/s62/chronos-bolt-tiny-8

The model is `chronos-forecasting`'s own class with the published Chronos-Bolt settings (patch 16,
9 quantiles, [REG] token, 64-step prediction, so a 96-step horizon takes the pipeline's second
pass), shrunk: d_model 128, 512-wide feed-forward, 4 heads, context 512, no dropout. Every batch
comes from `autoprune.data.synthetic`; its loss is the adapter's (the library's own quantile
loss), its optimiser and schedule `autoprune.train.fit`'s. `training.json` records the rest.
"""

from __future__ import annotations

import numpy as np
import torch

from autoprune.data.synthetic import synthetic_batch
from autoprune.models.chronos import BOLT_CHRONOS_CONFIG, ChronosBoltAdapter
from autoprune.models.pretrain_tiny import arguments, pretrain

SHAPE = dict(d_model=128, d_ff=512, d_kv=32, num_heads=4, num_layers=4, num_decoder_layers=4)
CHRONOS = {**BOLT_CHRONOS_CONFIG, "context_length": 512}  # the published settings, context 512
CONTEXTS = (128, 256, 384, 512)


def build(seed: int):
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config

    config = T5Config(
        **SHAPE,
        feed_forward_proj="relu",
        dropout_rate=0.0,
        vocab_size=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        is_encoder_decoder=True,
        chronos_config=CHRONOS,
    )
    torch.manual_seed(seed)
    return ChronosBoltModelForForecasting(config)


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    horizon, patch = CHRONOS["prediction_length"], CHRONOS["input_patch_size"]

    def batches(rng: np.random.Generator):
        past, future = synthetic_batch(rng, args.batch_size, int(rng.choice(CONTEXTS)), horizon)
        return past.astype(np.float32), future.astype(np.float32), patch

    described = {"shape": SHAPE, "chronos_config": CHRONOS, "contexts": CONTEXTS}
    pretrain(ChronosBoltAdapter(build(args.seed), "scratch"), batches, args, described)


if __name__ == "__main__":
    main()
