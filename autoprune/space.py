"""Search spaces: `search_spaces/<model>.toml` -> a frozen, validated `SearchSpace`.

A file is checked completely before any trial runs; every complaint names the file, the key and
the value. Optuna sees one boolean per droppable layer (`layer_07`), and a sampled set outside
[min_kept, max_kept] is repaired deterministically (`keep_from_flags`), so every trial is valid.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from autoprune.errors import SpaceError, UnknownNameError
from autoprune.metrics import METRICS, accuracy_index

COST_OBJECTIVES = ("params", "latency_ms")
OBJECTIVES = METRICS + COST_OBJECTIVES
DEFAULT_OBJECTIVES = ("mase", "params", "latency_ms")

_TOP_KEYS = {
    "model",
    "num_layers",
    "always_keep",
    "min_kept",
    "max_kept",
    "realign",
    "objectives",
    "forecast",
    "evaluation",
}
_REALIGN_KEYS = {"steps", "lr", "batch_size", "mode", "distill_weight"}
REALIGN_MODES = ("data", "distill")
_FORECAST_KEYS = {"context_length", "horizon", "patch_size"}
_EVALUATION_KEYS = {"val_windows", "num_samples"}


def objective_value(name: str, value: float) -> float | int:
    """Optuna stores every objective as a float; a parameter count reads better as an int."""
    return int(round(value)) if name == "params" else value


@dataclass(frozen=True)
class Realign:
    """The re-alignment budget: every trial and the full-model reference get the same one.

    `mode` says what the pruned model is trained to predict: "data", the real future of each
    training window (the family's own loss); "distill", also futures sampled from the full,
    unpruned model's predictive distribution for the same past (the teacher), mixed with the
    data loss: `distill_weight` is the teacher's share of the loss (1.0 = teacher only,
    0.0 = exactly the data loss)."""

    steps: int = 30
    lr: float = 3e-4
    batch_size: int = 32
    mode: str = "data"
    distill_weight: float = 1.0

    def settings(self) -> dict:
        """What a study stores as its re-alignment (and refuses to resume with another of):
        the budget, plus the mode and weight where it is not plain data re-alignment, so a
        study or table made before modes existed reads as what it was, "data"."""
        budget = {"steps": self.steps, "lr": self.lr, "batch_size": self.batch_size}
        if self.mode == "data":
            return budget
        return {**budget, "mode": self.mode, "distill_weight": self.distill_weight}


@dataclass(frozen=True)
class SearchSpace:
    source: str
    model: str
    num_layers: int
    always_keep: tuple[int, ...] = ()
    min_kept: int = 1
    max_kept: int | None = None
    realign: Realign = field(default_factory=Realign)
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    context_length: int | None = None
    horizon: int | None = None
    patch_size: int | None = None
    val_windows: int = 256
    num_samples: int = 100

    @property
    def accuracy_objective(self) -> str:
        return self.objectives[accuracy_index(self.objectives)]

    @property
    def upper(self) -> int:
        return self.max_kept if self.max_kept is not None else self.num_layers - 1

    @property
    def droppable(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_layers) if i not in self.always_keep)

    def param_name(self, layer: int) -> str:
        return f"layer_{layer:02d}"

    def params_of(self, keep: Sequence[int]) -> dict[str, bool]:
        """The per-layer booleans that sample `keep`: what `enqueue_trial` is given."""
        return {self.param_name(i): i in keep for i in self.droppable}

    def keep_from_flags(self, flags: dict[int, bool]) -> tuple[int, ...]:
        """Sampled per-layer booleans -> a valid keep set, repaired in layer order: missing
        layers are added from layer 0 up (in Moirai the early layers matter most), surplus ones
        removed from the last down. The trial record stores the sampled booleans beside it."""
        keep = set(self.always_keep) | {i for i, kept in flags.items() if kept}
        order = range(self.num_layers)
        for layer in order:
            if len(keep) >= self.min_kept:
                break
            keep.add(layer)
        for layer in reversed(order):
            if len(keep) <= self.upper:
                break
            if layer not in self.always_keep:
                keep.discard(layer)
        return tuple(sorted(keep))

    @property
    def size(self) -> int:
        """How many distinct keep sets the space holds."""
        fixed, free = len(self.always_keep), len(self.droppable)
        return sum(
            math.comb(free, k - fixed) for k in range(max(self.min_kept, fixed), self.upper + 1)
        )

    def contains(self, keep: Sequence[int]) -> bool:
        keep = set(keep)
        return (
            set(self.always_keep) <= keep
            and self.min_kept <= len(keep) <= self.upper
            and all(0 <= i < self.num_layers for i in keep)
        )

    def for_model(self, num_layers: int) -> SearchSpace:
        if num_layers != self.num_layers:
            raise SpaceError(
                f"{self.source}: num_layers = {self.num_layers} but the model has {num_layers} "
                "layers; fix the file or pick the matching --space"
            )
        return self

    def for_name(self, model: str) -> SearchSpace:
        """A registered model (alias or hub id) searches only a file written for it: the file's
        budgets and forecast setting were chosen for that model. A local directory may use any
        file of its depth, as its name says nothing about which model it holds."""
        from autoprune.models import MODELS

        names = {model} | {e.alias for e in MODELS.values() if e.source == model}
        if names & set(MODELS) and self.model not in names:
            raise SpaceError(
                f"{self.source}: model = {self.model!r} but the search is for {model!r}; pick "
                f"the file for {model!r} (search_spaces/) or leave --space out"
            )
        return self

    def with_objectives(self, objectives: Sequence[str]) -> SearchSpace:
        return replace(self, objectives=_check_objectives(self.source, list(objectives)))


def _fail(source: str, key: str, value: object, why: str) -> SpaceError:
    return SpaceError(f"{source}: {key} = {value!r} {why}")


def _check_table(source: str, name: str, table: object, allowed: set[str]) -> dict:
    if not isinstance(table, dict):
        raise _fail(source, name, table, "must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(
            source,
            f"{name}.{unknown[0]}" if name else unknown[0],
            table[unknown[0]],
            f"is not a known key; known: {', '.join(sorted(allowed))}",
        )
    return table


def _int(source: str, key: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, key, value, "must be a whole number")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _fail(source, key, value, f"must be {bound}")
    return value


def _check_objectives(source: str, objectives: object) -> tuple[str, ...]:
    if isinstance(objectives, dict):
        for name, direction in objectives.items():
            if direction not in ("min", "minimize"):
                raise _fail(
                    source,
                    f"objectives.{name}",
                    direction,
                    "is not allowed: every objective is an error or a cost, so it is "
                    'minimised; write "min"',
                )
        objectives = list(objectives)
    if not isinstance(objectives, list) or not objectives:
        raise _fail(source, "objectives", objectives, "must be a non-empty list of names")
    for name in objectives:
        if name not in OBJECTIVES:
            raise UnknownNameError(
                f"{source}: objectives has unknown objective {name!r}; "
                f"known: {', '.join(OBJECTIVES)}"
            )
    accuracy = [o for o in objectives if o in METRICS]
    if len(accuracy) != 1:
        raise _fail(
            source,
            "objectives",
            objectives,
            f"must name exactly one accuracy objective (one of {', '.join(METRICS)})",
        )
    if len(set(objectives)) != len(objectives):
        raise _fail(source, "objectives", objectives, "names an objective twice")
    return tuple(objectives)


def parse_space(data: dict, source: str) -> SearchSpace:
    _check_table(source, "", data, _TOP_KEYS)
    if "model" not in data or "num_layers" not in data:
        raise SpaceError(f"{source}: model and num_layers are required")
    num_layers = _int(source, "num_layers", data["num_layers"], 1)
    always_keep = data.get("always_keep", [])
    if not isinstance(always_keep, list):
        raise _fail(source, "always_keep", always_keep, "must be a list of layer indices")
    for i in always_keep:
        _int(source, "always_keep", i, 0, num_layers - 1)
    min_kept = _int(source, "min_kept", data.get("min_kept", 1), 1, num_layers)
    max_kept = _int(source, "max_kept", data.get("max_kept", num_layers - 1), 1, num_layers)
    if min_kept > max_kept:
        raise _fail(source, "min_kept", min_kept, f"is larger than max_kept = {max_kept}")
    if len(set(always_keep)) > max_kept:
        raise _fail(source, "always_keep", always_keep, f"keeps more than max_kept = {max_kept}")
    realign = _check_table(source, "realign", data.get("realign", {}), _REALIGN_KEYS)
    steps = _int(source, "realign.steps", realign.get("steps", Realign.steps), 0)
    batch = _int(source, "realign.batch_size", realign.get("batch_size", Realign.batch_size), 1)
    lr = realign.get("lr", Realign.lr)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < 1:
        raise _fail(source, "realign.lr", lr, "must be a number between 0 and 1")
    mode = realign.get("mode", Realign.mode)
    if mode not in REALIGN_MODES:
        raise _fail(
            source,
            "realign.mode",
            mode,
            'is not a re-alignment mode; write "data" (the real futures) or "distill" (the '
            "full model's forecasts as the target)",
        )
    weight = realign.get("distill_weight", Realign.distill_weight)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise _fail(
            source,
            "realign.distill_weight",
            weight,
            "must be a number between 0 and 1 (the teacher's share of the loss; 1 = teacher only)",
        )
    if mode == "data" and "distill_weight" in realign:
        raise _fail(
            source,
            "realign.distill_weight",
            weight,
            'applies only with mode = "distill"; add that or remove distill_weight',
        )
    forecast = _check_table(source, "forecast", data.get("forecast", {}), _FORECAST_KEYS)
    for key, value in forecast.items():
        _int(source, f"forecast.{key}", value, 1)
    evaluation = _check_table(source, "evaluation", data.get("evaluation", {}), _EVALUATION_KEYS)
    for key, value in evaluation.items():
        _int(source, f"evaluation.{key}", value, 1)
    return SearchSpace(
        source=source,
        model=str(data["model"]),
        num_layers=num_layers,
        always_keep=tuple(sorted(set(always_keep))),
        min_kept=min_kept,
        max_kept=max_kept,
        realign=Realign(
            steps=steps, lr=float(lr), batch_size=batch, mode=mode, distill_weight=float(weight)
        ),
        objectives=_check_objectives(source, data.get("objectives", list(DEFAULT_OBJECTIVES))),
        **forecast,
        **evaluation,
    )


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpaceError(f"search-space file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SpaceError(f"--space {str(path)!r} is a directory; give a TOML file") from None
    except UnicodeDecodeError as exc:
        raise SpaceError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start}); "
            "TOML files are UTF-8 - save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: not valid TOML ({exc})") from None
    return parse_space(data, str(path))


def space_for_model(
    model: str, num_layers: int, path: str | Path | None = None, always_keep: Sequence[int] = ()
) -> SearchSpace:
    """The explicit file, else the shipped one for this alias, else a default for its depth
    that keeps `always_keep` (the family's, `Adapter.always_keep`, or a resumed study's)."""
    if path is not None:
        return load_space(path).for_model(num_layers).for_name(model)
    shipped = resources.files("autoprune.search_spaces") / f"{model}.toml"
    if shipped.is_file():
        return load_space(Path(str(shipped))).for_model(num_layers)
    default = {"model": model, "num_layers": num_layers, "always_keep": list(always_keep)}
    return parse_space(default, f"<default for {model}>")
