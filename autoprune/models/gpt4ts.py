"""GPT4TS (Zhou et al., "One Fits All", NeurIPS 2023): the GPT-2 blocks are the layers.

GPT4TS is not a published package, so its small point forecaster is written here around
transformers' own `GPT2Model`. A saved checkpoint's (pruned) backbone loads with
`GPT2Model.from_pretrained(DIR)`, the whole forecaster with `GPT4TSAdapter.load(DIR)`. A plain
GPT-2 checkpoint loads too, with a new seeded patch embedding and head that only the re-alignment
trains, so its zero-shot numbers are an untrained head's.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from autoprune.errors import AutoPruneError, ModelLoadError
from autoprune.models._base import (
    WEIGHTS,
    Adapter,
    ModelEntry,
    Staged,
    check_checkpoint,
    require,
    resolve_directory,
)

FAMILY_KEY = "autoprune_family"
SIZES_KEY = "gpt4ts"  # config.json section with the window sizes the head is built for
BACKBONE = "backbone."
HEAD_PREFIX = "gpt4ts."  # in the file, names of the tensors GPT2Model does not have
PATCH_LEN, STRIDE = 16, 8  # GPT4TS's long-term forecasting scripts
# A plain GPT-2 gets a head for these unless told otherwise: the default window of the ETT
# datasets in autoprune's registry (GPT4TS used 336 or 512 steps of context, horizon 96 to 720).
DEFAULT_CONTEXT, DEFAULT_HORIZON = 512, 96
HEAD_SEED = 0
SIZE_NAMES = ("context_length", "horizon", "patch_len", "stride")
EPS = 1e-5  # GPT4TS's variance floor in the instance normalisation

# GPT-2 small, as published in openai-community/gpt2's config.json (n_embd 768, n_layer 12,
# n_head 12, n_positions 1024, vocab_size 50257) = GPT2Config()'s defaults. GPT2Model has
# 124,439,808 parameters (the unused token embedding included: GPT2Model always holds it);
# the patch embedding adds 16*768 + 768 and the head for 512 -> 96 adds 64*768*96 + 96.
ALIASES = (
    ModelEntry(
        "gpt4ts-gpt2",
        "gpt4ts",
        "openai-community/gpt2",
        "GPT4TS on pretrained GPT-2 small; new patch embedding and head, trained by re-alignment",
        12,
        129_171_552,
        dict(
            d_model=768,
            num_layers=12,
            patch_len=PATCH_LEN,
            stride=STRIDE,
            context_length=DEFAULT_CONTEXT,
            horizon=DEFAULT_HORIZON,
        ),
    ),
)


def _transformers():
    return require("transformers", "gpt4ts")


def num_patches(context_length: int, patch_len: int, stride: int) -> int:
    """Patches of a window padded by one stride at the end (GPT4TS's ReplicationPad1d)."""
    return (context_length - patch_len) // stride + 2


class GPT4TS(nn.Module):
    """The forecaster: instance normalisation of each window (RevIN-style, no affine
    parameters), patches of 16 steps with stride 8 (the series padded with its last value by
    one stride, as GPT4TS does), a linear patch embedding, GPT-2's position embeddings, blocks
    and final layer norm, and one linear head from all the flattened patch states to the
    horizon. Trained with the mean squared error of the normalised series."""

    def __init__(
        self,
        backbone: nn.Module,
        context_length: int,
        horizon: int,
        patch_len: int = PATCH_LEN,
        stride: int = STRIDE,
    ) -> None:
        super().__init__()
        self.context_length, self.horizon = context_length, horizon
        self.patch_len, self.stride = patch_len, stride
        d_model = backbone.config.n_embd
        self.backbone = backbone
        self.patch_embedding = nn.Linear(patch_len, d_model)
        self.head = nn.Linear(d_model * num_patches(context_length, patch_len, stride), horizon)

    @property
    def sizes(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in SIZE_NAMES}

    def normalise(self, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc = past.mean(dim=1, keepdim=True)
        scale = torch.sqrt(past.var(dim=1, keepdim=True, unbiased=False) + EPS)
        return (past - loc) / scale, loc, scale

    def patches(self, scaled: torch.Tensor) -> torch.Tensor:
        """(B, context) -> (B, patches, patch_len)."""
        padded = F.pad(scaled.unsqueeze(1), (0, self.stride), mode="replicate").squeeze(1)
        return padded.unfold(-1, self.patch_len, self.stride)

    def forward(self, past: torch.Tensor) -> torch.Tensor:
        """Point forecast (B, horizon) on the raw scale, through GPT2Model's own forward."""
        scaled, loc, scale = self.normalise(past)
        embeds = self.patch_embedding(self.patches(scaled))
        hidden = self.backbone(inputs_embeds=embeds).last_hidden_state
        return self.head(hidden.flatten(1)) * scale + loc


def new_gpt4ts(backbone: nn.Module, context_length: int, horizon: int) -> GPT4TS:
    """A GPT4TS around `backbone` with a new patch embedding and head, the same for the same
    window sizes every time (seeded, without touching the global random state)."""
    _check_positions(backbone, context_length, PATCH_LEN, STRIDE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(HEAD_SEED)
        model = GPT4TS(backbone, context_length, horizon)
    device = next(backbone.parameters()).device
    return model.to(device)


def _file_name(name: str) -> str:
    """Module state name -> file tensor name: the backbone's as GPT2Model names them, the patch
    embedding's and head's under HEAD_PREFIX."""
    return name.removeprefix(BACKBONE) if name.startswith(BACKBONE) else HEAD_PREFIX + name


def _module_name(name: str) -> str:
    return name.removeprefix(HEAD_PREFIX) if name.startswith(HEAD_PREFIX) else BACKBONE + name


def _one_line(exc: Exception) -> str:
    """An exception as one line: torch names the missing tensors after the first line."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _read_config(directory: Path) -> dict:
    try:
        config = json.loads((directory / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{directory / 'config.json'} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{directory / 'config.json'} is not a JSON object")
    return config


def _load_saved(directory: Path, config: dict) -> GPT4TS:
    """A GPT4TS checkpoint: GPT2Model built from the saved config (nothing is downloaded), then
    every tensor loaded strictly."""
    transformers = _transformers()
    from safetensors.torch import load_file

    gpt2 = {k: v for k, v in config.items() if k not in (FAMILY_KEY, SIZES_KEY)}
    try:
        sizes = {k: int(config[SIZES_KEY][k]) for k in SIZE_NAMES}
        backbone = transformers.GPT2Model(transformers.GPT2Config.from_dict(gpt2))
        model = GPT4TS(backbone, **sizes)
        tensors = load_file(directory / WEIGHTS)
        model.load_state_dict({_module_name(k): t for k, t in tensors.items()}, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(
            f"model directory {str(directory)!r} does not load as a GPT4TS: {_one_line(exc)} "
            f"(config.json and {WEIGHTS} must come from the same model)"
        ) from None
    return model


def _load_gpt2(directory: Path) -> nn.Module:
    """A plain GPT-2 through transformers' own loader, which maps GPT2LMHeadModel checkpoints
    and skips the old causal-mask buffers; any backbone weight left unloaded is an error."""
    transformers = _transformers()
    try:
        backbone, info = transformers.GPT2Model.from_pretrained(
            str(directory),
            local_files_only=True,
            use_safetensors=True,
            dtype=torch.float32,
            output_loading_info=True,
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"model directory {str(directory)!r} does not load as a GPT2Model: {_one_line(exc)}"
        ) from None
    missing = info["missing_keys"] or [k for k, *_ in info.get("mismatched_keys", [])]
    if missing:
        raise ModelLoadError(
            f"model directory {str(directory)!r} lacks GPT-2 weights {sorted(missing)[:3]}; "
            f"config.json and {WEIGHTS} must come from the same model"
        )
    return backbone


class GPT4TSAdapter(Adapter):
    family = "gpt4ts"

    def __init__(self, model: nn.Module, source: str, new_head: bool = False) -> None:
        super().__init__(model, source)
        self.new_head = new_head

    @classmethod
    def recognizes(cls, config: dict) -> bool:
        return config.get(FAMILY_KEY) == cls.family or config.get("model_type") == "gpt2"

    @classmethod
    def load(
        cls,
        source: str | Path,
        context_length: int = DEFAULT_CONTEXT,
        horizon: int = DEFAULT_HORIZON,
    ) -> GPT4TSAdapter:
        """A GPT4TS checkpoint as saved; a plain GPT-2 with a new head for `context_length` ->
        `horizon` (ignored for a GPT4TS checkpoint, whose head is tied to its own sizes)."""
        directory = resolve_directory(source)
        check_checkpoint(
            directory,
            hint="save a GPT4TS with GPT4TSAdapter.save, or a GPT-2 with GPT2Model.save_pretrained",
        )
        config = _read_config(directory)
        if config.get(FAMILY_KEY) == cls.family:
            model = _load_saved(directory, config)
        elif config.get("model_type") == "gpt2":
            model = new_gpt4ts(_load_gpt2(directory), context_length, horizon)
        else:
            raise ModelLoadError(
                f"{directory / 'config.json'} is neither a GPT4TS checkpoint nor a GPT-2 config"
            )
        if model.backbone.config.scale_attn_by_inverse_layer_idx:
            raise ModelLoadError(
                f"model {str(source)!r} scales attention by the layer index "
                "(scale_attn_by_inverse_layer_idx), so a block would compute something else "
                "after pruning renumbers it; autoprune does not prune such GPT-2 models"
            )
        return cls(model, str(source), new_head=config.get(FAMILY_KEY) != cls.family)

    def set_windows(self, context_length: int, horizon: int) -> None:
        """Make the loaded model forecast `horizon` steps from `context_length`: a new head is
        rebuilt for them (the same seeded head as a direct load would build); a trained head
        must already fit them. Call before pruning: pruned models copy the loaded one."""
        model = self.model
        if (context_length, horizon) == (model.context_length, model.horizon):
            return
        if not self.new_head:
            raise _windows_error(model, context_length, horizon, new_head=False)
        self.model = new_gpt4ts(model.backbone, context_length, horizon).eval()
        vars(self).pop("_counts", None)  # the head's size changed

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return model.backbone.h

    @property
    def patch_sizes(self) -> tuple[int, ...]:
        return (self.model.patch_len,)

    def prune(self, keep: Sequence[int]) -> nn.Module:
        keep = self.check_keep(keep)
        blocks = self.layers(self.model)
        # dropped blocks map to None in deepcopy's memo, so they are never copied
        memo = {id(block): None for i, block in enumerate(blocks) if i not in keep}
        pruned = copy.deepcopy(self.model, memo)
        pruned.backbone.h = nn.ModuleList([pruned.backbone.h[i] for i in keep])
        # what GPT2Model(config) would build for the pruned depth: n_layer and the layer indices
        # (which index the KV cache) follow the kept blocks
        pruned.backbone.config.n_layer = len(keep)
        for index, block in enumerate(pruned.backbone.h):
            block.attn.layer_idx = index
        return pruned

    def save(self, model: nn.Module, directory: str | Path) -> None:
        """config.json is a GPT-2 config (`model_type` "gpt2") plus `autoprune_family` and
        `gpt4ts` (the window sizes the head is built for); model.safetensors holds the backbone
        under `GPT2Model`'s own tensor names and the patch embedding and head under `gpt4ts.`,
        so GPT-2's own library reads the directory."""
        from safetensors.torch import save_file

        backbone = model.backbone
        if backbone.config.n_layer != len(backbone.h):
            raise ModelLoadError(
                f"model config says {backbone.config.n_layer} layers but the model has "
                f"{len(backbone.h)}; prune it with the adapter's prune()"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = json.loads(backbone.config.to_json_string())  # what save_pretrained writes
        config |= {"architectures": ["GPT2Model"], FAMILY_KEY: self.family, SIZES_KEY: model.sizes}
        (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tensors = {
            _file_name(k): t.detach().cpu().contiguous() for k, t in model.state_dict().items()
        }
        save_file(tensors, directory / WEIGHTS, metadata={"format": "pt"})

    @contextlib.contextmanager
    def attention_probabilities(self, sink: list[torch.Tensor]) -> Iterator[None]:
        """GPT-2 runs attention through SDPA, which never materialises the probabilities, so a
        global forward hook recomputes each GPT2Attention's causal softmax from its input."""
        attention_class = require("transformers.models.gpt2.modeling_gpt2", "gpt4ts").GPT2Attention

        def record(module, args, kwargs, output) -> None:
            if isinstance(module, attention_class):
                hidden = args[0] if args else kwargs["hidden_states"]
                sink.append(_causal_probabilities(module, hidden))

        handle = nn.modules.module.register_module_forward_hook(record, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def staged(
        self, model: nn.Module, past: torch.Tensor, horizon: int, patch_size: int
    ) -> GPT4TSStaged:
        if (past.shape[1], horizon) != (model.context_length, model.horizon):
            raise _windows_error(model, past.shape[1], horizon, self.new_head)
        return GPT4TSStaged(model, past)

    def loss(
        self, model: nn.Module, past: torch.Tensor, future: torch.Tensor, patch_size: int
    ) -> torch.Tensor:
        """Mean squared error of the normalised series, GPT4TS's training loss."""
        staged, hidden = self.through(model, past, future.shape[1], patch_size)
        return staged.mean_and_nll(hidden, future)[1].mean()

    def forecast(
        self,
        model: nn.Module,
        past: torch.Tensor,
        horizon: int,
        patch_size: int,
        num_samples: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """The point forecast as the one path, (B, 1, horizon): GPT4TS has no distribution."""
        return self.forward(model, past, horizon, patch_size).unsqueeze(1)


def _check_positions(backbone: nn.Module, context_length: int, patch_len: int, stride: int) -> None:
    if context_length < patch_len:
        raise AutoPruneError(
            f"--context-length {context_length} is shorter than one GPT4TS patch ({patch_len})"
        )
    patches = num_patches(context_length, patch_len, stride)
    if patches > backbone.config.n_positions:
        longest = (backbone.config.n_positions - 2) * stride + patch_len
        raise AutoPruneError(
            f"--context-length {context_length} makes {patches} patches, more than GPT-2's "
            f"{backbone.config.n_positions} positions; use at most {longest}"
        )


def _windows_error(
    model: GPT4TS, context_length: int, horizon: int, new_head: bool
) -> AutoPruneError:
    other = (
        "its head is new and was built for that window; GPT4TSAdapter.set_windows, called "
        "before pruning, builds it for another"
        if new_head
        else "a plain GPT-2 (e.g. gpt4ts-gpt2) gets a new head for any window"
    )
    return AutoPruneError(
        f"this GPT4TS forecasts horizon {model.horizon} from context {model.context_length} "
        f"only (its linear head is tied to both), but context {context_length} and horizon "
        f"{horizon} were asked for; pass --context-length {model.context_length} --horizon "
        f"{model.horizon} ({other})"
    )


def _causal_probabilities(module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, T) attention probabilities of one GPT2Attention, as its eager path has them."""
    query, key, _ = module.c_attn(hidden).split(module.split_size, dim=2)
    shape = (*hidden.shape[:-1], -1, module.head_dim)
    query, key = query.view(shape).transpose(1, 2), key.view(shape).transpose(1, 2)
    logits = (query @ key.transpose(-1, -2)) * module.scaling
    tokens = logits.shape[-1]
    causal = torch.ones(tokens, tokens, dtype=torch.bool, device=logits.device).tril()
    return logits.masked_fill(~causal, float("-inf")).softmax(dim=-1).detach()


class GPT4TSStaged(Staged):
    """GPT4TS.forward cut at block boundaries: the same modules and the same causal mask
    (transformers' own `create_causal_mask`) as GPT2Model.forward, block by block."""

    def __init__(self, model: GPT4TS, past: torch.Tensor) -> None:
        self.model = model
        self.scaled, self.loc, self.scale = model.normalise(past)
        self.mask = None

    def embed(self) -> torch.Tensor:
        backbone = self.model.backbone
        embeds = self.model.patch_embedding(self.model.patches(self.scaled))
        positions = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0)
        masking = require("transformers.masking_utils", "gpt4ts")
        self.mask = masking.create_causal_mask(
            config=backbone.config,
            inputs_embeds=embeds,
            attention_mask=None,
            cache=None,
            position_ids=positions,
        )
        return backbone.drop(embeds + backbone.wpe(positions))

    def apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(hidden, attention_mask=self.mask)

    def _scaled_forecast(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.backbone.ln_f(hidden).flatten(1))

    def distribution(self, hidden: torch.Tensor) -> torch.Tensor:
        """The point forecast (B, horizon) on the raw scale."""
        return self._scaled_forecast(hidden) * self.scale + self.loc

    def mean_and_nll(
        self, hidden: torch.Tensor, future: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The forecast and each window's mean squared error on the normalised scale."""
        scaled = self._scaled_forecast(hidden)
        error = scaled - (future - self.loc) / self.scale
        return scaled * self.scale + self.loc, error.pow(2).mean(dim=1)
