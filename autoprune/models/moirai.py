"""Moirai (uni2ts): the encoder blocks of `MoiraiModule` are the layers.

Everything runs through uni2ts's own classes: `MoiraiModule.from_pretrained` / `save_pretrained`
for checkpoints, `MoiraiForecast._convert` for packing windows into tokens, the module's own
submodules for the forward pass, and `PackedNLLLoss` for re-alignment.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from autoprune.errors import ModelLoadError
from autoprune.models._base import (
    WEIGHTS,
    Adapter,
    ModelEntry,
    Staged,
    check_checkpoint,
    resolve_directory,
    tiny_checkpoint_dir,
)


def _uni2ts():
    """Import uni2ts lazily: it pulls in lightning, gluonts and jax (seconds), and only the
    Moirai family needs it."""
    with contextlib.redirect_stderr(io.StringIO()):
        from uni2ts.common.torch_util import mask_fill, packed_attention_mask
        from uni2ts.loss.packed import PackedNLLLoss
        from uni2ts.model.moirai import MoiraiForecast, MoiraiModule
    return MoiraiModule, MoiraiForecast, PackedNLLLoss, mask_fill, packed_attention_mask


def draw_free(distr):
    """`distr` (a uni2ts mixture, bare or affine-transformed), its `log_prob` made draw-free.

    uni2ts's `Mixture.log_prob` draws a sample of every component, as wide as the batch, only to
    stand in for targets outside that component's support, where the log-probability is -inf
    whatever stands in. A constant inside the support does as well: the same values and the
    same gradients, without the draws (a quarter of a screen head's time, Gamma and Poisson
    draws) and without moving the global random state. Only for scoring: `sample` of the
    mixture itself is untouched."""
    mixture = getattr(distr, "base_dist", distr)
    for component in getattr(mixture, "components", ()):
        for stand_in in (0.0, 1.0):
            value = mixture.weights.logits.new_tensor(stand_in)
            if bool(component.support.check(value)):
                component.sample = lambda sample_shape=None, value=value: value
                break
    return distr


def draw(distr, sample_shape: torch.Size) -> torch.Tensor:
    """Samples of `distr` (a uni2ts mixture, bare or affine-transformed), drawn by component.

    The same distribution as uni2ts's `Mixture.sample`, which draws every component at every
    point and then picks one per draw; here each draw's component is picked first and drawn
    alone (the component picked most often is drawn everywhere: cheaper than gathering its
    parameters). A seed gives other draws than uni2ts's. On the shipped models' forecasts the
    count component (Gamma then Poisson draws, the slowest) is picked for ~0.1% of points, and
    sampling 100 paths of a 128-window batch takes about a third of the time uni2ts's does
    (scripts/moirai_costs.py)."""
    mixture = getattr(distr, "base_dist", distr)
    if not hasattr(mixture, "components"):
        return distr.sample(sample_shape)
    picks = mixture.weights.sample(sample_shape)
    counts = torch.bincount(picks.flatten(), minlength=len(mixture.components))
    most = int(counts.argmax())
    out = mixture.components[most].sample(sample_shape).contiguous()
    flat, points, batch = out.view(-1), picks.flatten(), mixture.batch_shape.numel()
    for i, component in enumerate(mixture.components):
        if i == most or not counts[i]:
            continue
        where = (points == i).nonzero().squeeze(1)
        at = where % batch  # the batch point of each draw: the sample axes come first
        params = {
            name: getattr(component, name).expand(mixture.batch_shape).reshape(-1)[at]
            for name in component.arg_constraints
        }
        flat[where] = type(component)(**params, validate_args=False).sample().to(flat.dtype)
    for transform in getattr(distr, "transforms", ()):
        out = transform(out)
    return out


@contextlib.contextmanager
def one_patch_size(module: nn.Module, size: int) -> Iterator[None]:
    """Within the block, uni2ts's multi-size linear layers in `module` (the patch embedding
    `in_proj`, the distribution head's `param_proj`) compute patch size `size` only.

    Such a layer computes its projection for every patch size it knows, then keeps per token
    the one the token's patch size asks for; autoprune packs every token of a batch with one
    patch size, so the others are thrown away. Computing only that one gives the same values
    and gradients bit for bit (tested) and takes about a fifth off a re-alignment step of
    moirai-tiny. A size a layer does not know leaves it as it is."""
    from uni2ts.module.ts_embed import MultiInSizeLinear, MultiOutSizeLinear

    patched = []
    for leaf in module.modules():
        if isinstance(leaf, MultiInSizeLinear):
            sizes = list(leaf.in_features_ls)
        elif isinstance(leaf, MultiOutSizeLinear):
            sizes = [features // leaf.dim for features in leaf.out_features_ls]
        else:
            continue
        if size in sizes:
            leaf.forward = functools.partial(_at_one_size, leaf, sizes.index(size))
            patched.append(leaf)
    try:
        yield
    finally:
        for leaf in patched:
            del leaf.forward  # the class's own forward again


def _at_one_size(leaf: nn.Module, index: int, x: torch.Tensor, _sizes: torch.Tensor):
    """A multi-size linear layer's projection for its `index`-th size, as the layer computes
    it (masked weight, then bias)."""
    weight = leaf.weight[index] * leaf.mask[index]
    return torch.einsum("ab,...b->...a", weight, x) + (0 if leaf.bias is None else leaf.bias[index])


_MOIRAI_SHAPES = {
    "small": (dict(d_model=384, num_layers=6), 13_827_528),
    "base": (dict(d_model=768, num_layers=12), 91_357_728),
    "large": (dict(d_model=1024, num_layers=24), 310_970_624),
}

ALIASES = (
    ModelEntry(
        "moirai-tiny",
        "moirai",
        str(tiny_checkpoint_dir()),
        "autoprune's own 12-layer Moirai, pretrained on synthetic series (shipped)",
        12,
        2_698_672,
        dict(d_model=128, num_layers=12, patch_sizes=(16, 32, 64)),
        license="apache-2.0",  # its model card
    ),
    ModelEntry(
        "moirai-tiny-8",
        "moirai",
        str(tiny_checkpoint_dir("moirai_tiny_8")),
        "8-layer sibling of moirai-tiny, same recipe (shipped; exhaustive benchmark ground truth)",
        8,
        1_906_592,
        dict(d_model=128, num_layers=8, patch_sizes=(16, 32, 64)),
        license="apache-2.0",  # made by autoprune (pretrain_tiny), like moirai-tiny
    ),
    *(
        ModelEntry(
            f"moirai{version}-{size}",
            "moirai",
            f"Salesforce/moirai-{hub}-R-{size}",
            f"Moirai {hub}-R {size} (Salesforce)",
            shape["num_layers"],
            params,
            dict(shape, patch_sizes=(8, 16, 32, 64, 128)),
        )
        for size, (shape, params) in _MOIRAI_SHAPES.items()
        for version, hub in (("", "1.0"), ("-1.1", "1.1"))
    ),
)


# uni2ts's distribution heads, by the module that defines each: the only classes a checkpoint
# config may name. Exact names, not a prefix: hydra resolves a dotted `_target_` by walking
# attributes, so "uni2ts.distribution.mixture.torch.serialization.os.system" starts with the
# package's name and still reaches os.system.
_DISTRIBUTIONS = {
    "laplace": ("LaplaceOutput", "LaplaceFixedScaleOutput"),
    "log_normal": ("LogNormalOutput",),
    "mixture": ("MixtureOutput",),
    "negative_binomial": ("NegativeBinomialOutput",),
    "normal": ("NormalOutput", "NormalFixedScaleOutput"),
    "pareto": ("ParetoOutput", "ParetoFixedAlphaOutput"),
    "student_t": ("StudentTOutput",),
}
SAFE_TARGETS = frozenset(
    name
    for module, classes in _DISTRIBUTIONS.items()
    for cls in classes
    for name in (f"uni2ts.distribution.{module}.{cls}", f"uni2ts.distribution.{cls}")
)


def _check_targets(config_path: Path) -> None:
    """uni2ts rebuilds the distribution head with hydra's `instantiate`, which imports and calls
    whatever `_target_` names - a config.json could run any code. Only uni2ts's own
    distribution classes may be named, each by its exact name."""
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON ({exc})") from None
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            target = node.get("_target_")
            if target is not None and (not isinstance(target, str) or target not in SAFE_TARGETS):
                raise ModelLoadError(
                    f"{config_path} names _target_ = {target!r}; autoprune only builds uni2ts's "
                    "distribution classes from a config (e.g. "
                    "'uni2ts.distribution.mixture.MixtureOutput'), because anything else could "
                    "run code from the checkpoint"
                )
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class MoiraiAdapter(Adapter):
    family = "moirai"
    module_name = "MoiraiModule"  # the uni2ts class that loads and saves the family's checkpoints

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        # Moirai-MoE configs have both keys too, plus d_ff, which MoiraiModule does not take
        return {"distr_output", "patch_sizes"} <= set(config) and "d_ff" not in config

    @classmethod
    def _module_class(cls) -> type[nn.Module]:
        return _uni2ts()[0]

    @classmethod
    def load(cls, source: str | Path) -> MoiraiAdapter:
        directory = resolve_directory(source)
        check_checkpoint(directory, hint=f"save the model with {cls.module_name}.save_pretrained")
        _check_targets(directory / "config.json")
        module_class = cls._module_class()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                model = module_class.from_pretrained(str(directory), strict=True)
        except (RuntimeError, TypeError, ValueError, KeyError, json.JSONDecodeError) as exc:
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise ModelLoadError(
                f"model directory {str(directory)!r} does not load as a {cls.module_name}: "
                f"{first_line[:300]} (config.json and {WEIGHTS} must come from the same model)"
            ) from None
        return cls(model, str(source))

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return model.encoder.layers

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        return tuple(self.model.patch_sizes)

    def prune(self, keep: Sequence[int]) -> nn.Module:
        keep = self.check_keep(keep)
        layers = self.layers(self.model)
        # Dropped layers map to None in deepcopy's memo, so they are never copied: pruning a
        # large model costs the memory of the kept layers only. The shared rotary projection
        # (buffers, no parameters) stays shared among the kept copies.
        memo = {id(layer): None for i, layer in enumerate(layers) if i not in keep}
        pruned = copy.deepcopy(self.model, memo)
        pruned.encoder.layers = nn.ModuleList([pruned.encoder.layers[i] for i in keep])
        # PyTorchModelHubMixin saves the constructor arguments it recorded at creation, not the
        # current structure: without this the saved config says the old depth and a reload
        # (strict=False by default) silently fills the missing layers with random weights.
        pruned.num_layers = len(keep)
        pruned._hub_mixin_config = {**pruned._hub_mixin_config, "num_layers": len(keep)}
        return pruned

    def save(self, model: nn.Module, directory: str | Path) -> None:
        depth = len(self.layers(model))
        if model._hub_mixin_config.get("num_layers") != depth:
            raise ModelLoadError(
                f"model config says {model._hub_mixin_config.get('num_layers')} layers but the "
                f"model has {depth}; prune it with the adapter's prune()"
            )
        with contextlib.redirect_stdout(io.StringIO()):
            model.save_pretrained(str(directory))

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """Compute attention eagerly inside uni2ts (it calls F.scaled_dot_product_attention,
        which never materialises the probabilities) and append each layer's to `sink`."""
        import uni2ts.module.attention as attention

        real = attention.F

        class Eager:
            def __getattr__(self, name: str):
                return getattr(real, name)

            @staticmethod
            def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, scale=None):
                logits = (q @ k.transpose(-2, -1)) * (scale or q.shape[-1] ** -0.5)
                if attn_mask is not None:
                    logits = (
                        logits.masked_fill(~attn_mask, float("-inf"))
                        if attn_mask.dtype == torch.bool
                        else logits + attn_mask
                    )
                probs = logits.softmax(dim=-1)
                sink.append(probs.detach())
                return probs @ v

        attention.F = Eager()
        try:
            yield
        finally:
            attention.F = real

    def _packer(self, model: nn.Module, context_length: int, horizon: int, patch_size: int):
        """The family's own Forecast object, for its window -> token converter `_convert`."""
        MoiraiForecast = _uni2ts()[1]
        return MoiraiForecast(
            prediction_length=horizon,
            target_dim=1,
            feat_dynamic_real_dim=0,
            past_feat_dynamic_real_dim=0,
            context_length=context_length,
            module=model,
            patch_size=patch_size,
        )

    def _pack(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        future: torch.Tensor | None = None,
    ):
        """Windows -> uni2ts's packed token tensors, through the family's own converter."""
        packer = self._packer(model, past.shape[1], horizon, patch_size)
        past_target = past.unsqueeze(-1)
        kwargs = {}
        if future is not None:
            kwargs = dict(
                future_target=future.unsqueeze(-1),
                future_observed_target=torch.ones_like(future.unsqueeze(-1), dtype=torch.bool),
                future_is_pad=torch.zeros_like(future, dtype=torch.bool),
            )
        packed = packer._convert(
            patch_size,
            past_target,
            torch.ones_like(past_target, dtype=torch.bool),
            torch.zeros_like(past, dtype=torch.bool),
            **kwargs,
        )
        tokens = packed[0].shape[1]
        patch = torch.full(packed[3].shape, patch_size, dtype=torch.long, device=past.device)
        return packed, patch, tokens - packer.prediction_token_length(patch_size)

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """uni2ts's PackedNLLLoss of the horizon, from the staged pass. The module's own forward
        builds the mixture over every token and the widest patch, and the loss masks out all
        but the horizon tokens' first `patch_size` values: scoring only those gives the same
        gradients bit for bit (the loss itself may differ in its last bit: it sums in another
        order) and takes over half off a one-layer keep set's training step."""
        PackedNLLLoss = _uni2ts()[2]
        staged = MoiraiStaged(self, model, past, future.shape[1], patch_size, future)
        hidden = staged.through(self.layers(model))
        horizon = (slice(None), slice(staged.first, None))
        return PackedNLLLoss()(
            pred=draw_free(staged.distribution(hidden, trained=True)),
            target=staged.target[horizon][..., :patch_size],
            prediction_mask=staged.mask[horizon],
            observed_mask=staged.observed[horizon][..., :patch_size],
            sample_id=staged.sample_id[horizon],
            variate_id=staged.variate_id[horizon],
        )

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> MoiraiStaged:
        return MoiraiStaged(self, model, past, horizon, patch_size)

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        distr = self.forward(model, past, horizon, patch_size)
        devices = [past.device] if past.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            samples = draw(distr, torch.Size((num_samples,)))
        # (samples, batch, horizon tokens, patch) -> (batch, samples, time)
        return samples.flatten(2).transpose(0, 1)[..., :horizon]


class MoiraiStaged(Staged):
    """MoiraiModule.forward cut at layer boundaries, with the distribution head applied to the
    horizon tokens only: the module's own forward builds the mixture over every token and the
    full 128-wide patch, and sampling that is ~10x slower than sampling what the forecast reads.
    """

    def __init__(
        self,
        adapter: MoiraiAdapter,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        future: torch.Tensor | None = None,
    ) -> None:
        """`future` (known when training) is packed as the horizon's target; the model never
        sees it (the horizon tokens' inputs are the mask encoding, as in the module)."""
        self.model, self.horizon, self.patch_size = model, horizon, patch_size
        packed, self.patch, self.first = adapter._pack(model, past, horizon, patch_size, future)
        self.target, self.observed, sample_id, self.time_id, self.variate_id, self.mask = packed
        self.sample_id = sample_id
        self.attn_mask = _uni2ts()[4](sample_id)
        self.loc, self.scale = model.scaler(
            self.target, self.observed * ~self.mask.unsqueeze(-1), sample_id, self.variate_id
        )

    def embed(self) -> torch.Tensor:
        mask_fill = _uni2ts()[3]
        with one_patch_size(self.model.in_proj, self.patch_size):
            reprs = self.model.in_proj((self.target - self.loc) / self.scale, self.patch)
        return mask_fill(reprs, self.mask, self.model.mask_encoding.weight)

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(hidden, self.attn_mask, var_id=self.variate_id, time_id=self.time_id)

    def distribution(self, hidden: torch.Tensor, trained: bool = False):
        """The horizon's distribution. `trained`: the final norm and the head's projection run
        over every token and the horizon is cut out after them, so that a re-alignment's
        gradients are bit for bit those of the module's own forward (their weight gradients
        sum over the same rows); the mixture is still built over the horizon only."""
        model, p, tokens = self.model, self.patch_size, slice(self.first, None)
        rows = slice(None) if trained else tokens
        reprs = model.encoder.norm(hidden[:, rows])
        with one_patch_size(model.param_proj, p):
            params = model.param_proj(reprs, self.patch[:, rows])
        # every parameter leaf is (batch, token, max_patch, ...): keep the horizon's first
        # patch_size values
        cut = (slice(None), tokens if trained else slice(None), slice(None, p))
        params = torch.utils._pytree.tree_map(lambda t: t[cut], params)
        return model.distr_output.distribution(
            params, loc=self.loc[:, tokens, :p], scale=self.scale[:, tokens, :p]
        )

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        distr = draw_free(self.distribution(hidden))
        tokens, p = distr.batch_shape[1], self.patch_size
        padded = torch.zeros(future.shape[0], tokens * p, dtype=future.dtype, device=future.device)
        padded[:, : self.horizon] = future
        log_prob = distr.log_prob(padded.view(-1, tokens, p)).flatten(1)[:, : self.horizon]
        return distr.mean.flatten(1)[:, : self.horizon], -log_prob.mean(dim=1)
