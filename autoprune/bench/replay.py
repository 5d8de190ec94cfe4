"""Replay search strategies against a ground-truth table (`truth`): a trial is a look-up, so
dozens of seeds of every strategy run in minutes and are compared on exactly the same numbers.
Compute is the currency: every strategy is charged what it ran, in the table's measured seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import optuna

from autoprune.backends.local import MAX_LOOKUPS_IN_A_ROW
from autoprune.bench.truth import load_truth
from autoprune.errors import AutoPruneError, UnknownNameError
from autoprune.export import atomic_write_figure, atomic_write_text
from autoprune.importance import top_k
from autoprune.multifidelity import (
    Pool,
    still_promising,
    stop_rung,
    stopped_before,
)
from autoprune.objective import suggest_keep
from autoprune.pareto import ACCURACY_REFERENCE, hv_reference, hypervolume, non_dominated
from autoprune.record import mark
from autoprune.samplers import SamplerContext, Screen, build_sampler
from autoprune.screen import (
    EXHAUSTIVE_LIMIT,
    PROGRESS_EVERY,
    SCREEN_SHARE,
    all_keep_sets,
    applications,
    skipped_sentence,
)
from autoprune.search.options import SCREENS
from autoprune.space import SearchSpace, parse_space
from autoprune.study import model_named, same_model

CHECKPOINTS = (10, 20, 50, 100, 200)
LEVELS = (0.9, 0.95, 1.0)  # shares of the true hypervolume a strategy is timed to
WARM_TRIALS = 30  # a warm start knows what the default strategy trained on the other table
BUDGET = 100  # full-budget trials per seed (`bench replay --budget`'s default)


@dataclass
class Table:
    """The ground truth of one model and dataset, normalised by the re-aligned full model."""

    meta: dict
    keeps: list[tuple[int, ...]]
    values: np.ndarray  # (n, objectives), normalised
    screen: np.ndarray  # zero-shot MASE of the mean forecast, normalised by the full model's
    reference: np.ndarray
    rungs: dict[int, np.ndarray] = field(default_factory=dict)  # steps -> rung value per row
    # "r<steps>", "full", "full_mf"; "eval_r<steps>": each rung's evaluation (tables from stop 52)
    costs: dict[str, np.ndarray] = field(default_factory=dict)
    screen_cost: float = 0.0
    # from `values`: the non-dominated keep sets and their hypervolume
    true_hv: float = field(init=False)
    true_front: set[tuple[int, ...]] = field(init=False)

    def __post_init__(self) -> None:
        mask = non_dominated(self.values)
        self.true_hv = hypervolume(self.values[mask], self.reference)
        self.true_front = {k for k, m in zip(self.keeps, mask, strict=True) if m}

    @property
    def name(self) -> str:
        """The table's dataset, as a warm start from it is named (e.g. `etth1`)."""
        return Path(self.meta["dataset"]).stem

    @classmethod
    def load(cls, meta: dict, rows: list[dict]) -> Table:
        rows = [r for r in rows if r["mase"] is not None]
        objectives = meta["objectives"]
        full = np.array([meta["reference"]["realigned"][o] for o in objectives])
        values = np.array([[r[o] for o in objectives] for r in rows]) / full
        screen_full = meta["screen_full"]["mase"]
        steps = [s for s in meta.get("rungs", []) if all(r.get(f"r{s}_mase") for r in rows)]
        measured = steps and all(r.get("cost_full") for r in rows)
        kept = np.array([len(r["keep"]) for r in rows])
        costs = {}
        if measured:
            columns = {**{f"r{s}": f"cost_r{s}" for s in steps}, "full": "cost_full"}
            for name, column in columns.items():
                costs[name] = median_by_size(kept, np.array([r[column] for r in rows]))
            costs["full_mf"] = costs["full"] + median_by_size(
                kept, np.array([r["rungs_s"] for r in rows])
            )
            if all(r.get(f"eval_r{s}") is not None for r in rows for s in steps):
                for s in steps:
                    costs[f"eval_r{s}"] = median_by_size(
                        kept, np.array([r[f"eval_r{s}"] for r in rows])
                    )
        else:  # a table without measured costs: a trial costs its mean wall time (or 1)
            costs["full"] = np.full(len(rows), meta.get("seconds", {}).get("mean_trial", 1.0))
        return cls(
            meta,
            [r["keep"] for r in rows],
            values,
            np.array([r["zs_mase"] for r in rows]) / screen_full,
            hv_reference(objectives),
            {s: np.array([r[f"r{s}_mase"] for r in rows]) for s in steps} if measured else {},
            costs,
            meta.get("seconds", {}).get("screen_all", 0.0),
        )

    @property
    def charges_each_rung(self) -> bool:
        """Whether the table holds each rung's evaluation seconds, so a replay charges a stop
        rule only the rungs it evaluates (tables built before stop 52 hold their sum:
        `full_mf` and the rung costs charge every rung's evaluation)."""
        return all(f"eval_r{s}" in self.costs for s in self.rungs)

    def stopped_cost(self, i: int, steps: int, evaluated: Sequence[int]) -> float:
        """What row `i` stopped at rung `steps` cost a stop rule that evaluates the rungs
        `evaluated`: pruning, training to the rung and those evaluations up to it."""
        cost = self.costs[f"r{steps}"][i]
        if self.charges_each_rung:
            cost -= sum(self.costs[f"eval_r{s}"][i] for s in self.rungs if s <= steps)
            cost += sum(self.costs[f"eval_r{s}"][i] for s in evaluated if s <= steps)
        return float(cost)

    def full_cost(self, i: int, evaluated: Sequence[int] | None) -> float:
        """What row `i` trained to the full budget cost: a single-fidelity trial (`evaluated`
        None) or a multi-fidelity one, which evaluated the rungs `evaluated` on the way."""
        if evaluated is None:
            return float(self.costs["full"][i])
        if not self.charges_each_rung:
            return float(self.costs["full_mf"][i])
        return float(self.costs["full"][i] + sum(self.costs[f"eval_r{s}"][i] for s in evaluated))

    @property
    def num_layers(self) -> int:
        return self.meta["space"]["num_layers"]

    @property
    def partial(self) -> bool:
        """Whether the table lacks keep sets of its space: a sample (`bench truth --sample`) or
        a build not yet finished."""
        return len(self.keeps) < self.space.size

    @property
    def space(self) -> SearchSpace:
        """The search space the table was built on."""
        return parse_space(
            {
                "model": "replay",
                "num_layers": self.num_layers,
                "min_kept": self.meta["space"]["min_kept"],
                "max_kept": self.meta["space"]["max_kept"],
                "always_keep": self.meta["space"]["always_keep"],
            },
            "<replay>",
        )

    @property
    def full_trial_s(self) -> float:
        """What the full model's trial cost when the table was built (its re-alignment, rungs,
        validation and latency), the unit of `search --screen auto`'s allowance; a table built
        before that was recorded: a line through its sizes' median trial costs, taken at the
        full model's layer count."""
        if "full_trial" in self.meta.get("seconds", {}):
            return self.meta["seconds"]["full_trial"]
        kept = np.array([len(k) for k in self.keeps])
        cost = self.costs.get("full_mf", self.costs["full"])
        if len(set(kept)) < 2:
            return float(np.max(cost))
        slope, intercept = np.polyfit(kept, cost, 1)
        return float(intercept + slope * self.num_layers)

    def hv_without(self) -> dict[str, float]:
        """Per true-front keep set, the largest hypervolume ratio any strategy can reach
        without it (every other keep set of the table trained). Below a level, that level
        cannot be reached without finding this one keep set: a level that hinges on one near-tie
        measures luck as much as the strategy."""
        result = {}
        for keep in sorted(self.true_front, key=lambda k: (len(k), k)):
            rest = self.values[[k != keep for k in self.keeps]]
            best = hypervolume(rest[non_dominated(rest)], self.reference) / self.true_hv
            result[" ".join(map(str, keep))] = round(float(best), 4)
        return result

    def perturbed(self, seed: int, noise: float) -> Table:
        """A sibling table: every re-aligned accuracy (full budget and rungs) multiplied by
        exp(N(0, noise^2)) drawn from `seed`, its true front and hypervolume recomputed. It
        stands in for re-aligning the same keep sets with another seed: near-ties between keep
        sets flip, so a figure measured over siblings is not the luck of one table's ties.
        With no noise it is the table itself."""
        if not noise:
            return self
        rng = np.random.default_rng(seed)
        values = self.values.copy()
        values[:, 0] *= np.exp(rng.normal(0.0, noise, len(values)))
        rungs = {s: v * np.exp(rng.normal(0.0, noise, len(v))) for s, v in self.rungs.items()}
        return replace(self, values=values, rungs=rungs)

    def one_shot(self, scores: list[float]) -> list[tuple[int, ...]]:
        """The top-k layers by a prior, for every size in the table."""
        return [top_k(scores, k) for k in sorted({len(k) for k in self.keeps})]

    def top_screen(self) -> list[tuple[int, ...]]:
        """The best zero-shot keep set of every size."""
        best: dict[int, tuple[float, tuple[int, ...]]] = {}
        for keep, value in zip(self.keeps, self.screen, strict=True):
            if len(keep) not in best or value < best[len(keep)][0]:
                best[len(keep)] = (value, keep)
        return [best[k][1] for k in sorted(best)]


def median_by_size(kept: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each row's value replaced by the median over the rows of its size, which keeps one busy
    moment of the machine that built the table from tilting a strategy."""
    medians = {k: float(np.median(values[kept == k])) for k in np.unique(kept)}
    return np.array([medians[k] for k in kept])


class FrontStop:
    """The product's stop rule (`multifidelity.still_promising`): at the stop rung, a keep set
    goes on if its calibrated prediction could add hypervolume; proposed again once stopped,
    it goes to the full budget."""

    again = True  # a stopped keep set proposed again goes to the full budget

    def evaluated(self, table: Table) -> tuple[int, ...]:
        """The rungs its trials evaluate: only the one it stops at (`TrialContext.rungs`)."""
        return (stop_rung(list(table.rungs)),)

    def __call__(self, table: Table, study: optuna.Study, i: int, values: np.ndarray):
        """The rung at which row `i` stops, or None if it goes on."""
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        steps = stop_rung(list(table.rungs))
        full = np.ones(table.values.shape[1])
        value = float(table.rungs[steps][i])
        if not still_promising(trials, steps, value, values, full, 0, table.reference):
            return steps
        return None


REDUCTION = 3  # successive halving's reduction factor: the rungs 3, 10 and 30 steps are ~3x apart


class SuccessiveHalving:
    """Multi-objective asynchronous successive halving in its stopping form, as Syne Tune's
    MOASHA does it (Schmucker et al., 2021), a baseline for the product's stop rule: at every
    rung a keep set goes on if it ranks among the best 1/REDUCTION of the keep sets recorded at
    that rung, itself included (the first a rung sees goes on), ranked on the rung's accuracy
    and the known costs by non-dominated sorting, and within a front by an epsilon-net (the
    most accurate first, then each time the point farthest from those already ranked). A keep
    set stopped once and proposed again is stopped again at no cost, as a repeated keep set is
    (random search draws a configuration once); `again`: it goes to the full budget, as the
    product's rule does (the screened sampler proposes it again only when nothing new is worth
    more)."""

    def __init__(self, again: bool = False) -> None:
        self.again = again
        self.recorded: dict[int, list[np.ndarray]] = {}

    def evaluated(self, table: Table) -> tuple[int, ...]:
        """The rungs its trials evaluate: every one."""
        return tuple(sorted(table.rungs))

    def __call__(self, table: Table, study: optuna.Study, i: int, values: np.ndarray):
        for steps in sorted(table.rungs):
            seen = self.recorded.setdefault(steps, [])
            seen.append(np.r_[table.rungs[steps][i], values[1:]])
            position = int(np.flatnonzero(priority_order(np.array(seen)) == len(seen) - 1)[0])
            if position / len(seen) > 1 / REDUCTION:
                return steps
        return None


def priority_order(points: np.ndarray) -> np.ndarray:
    """Indices of `points` (minimised objectives) best first: non-dominated sorting, and within
    each front an epsilon-net on the objectives scaled to [0, 1] over all points (the best on
    the first objective, then each time the point farthest from those already taken)."""
    low, high = points.min(0), points.max(0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    left = np.arange(len(points))
    order: list[int] = []
    while len(left):
        front = left[non_dominated(points[left])]
        left = np.setdiff1d(left, front)
        first = front[np.argmin(points[front, 0])]
        rest = front[front != first]
        gap = np.linalg.norm(scaled[rest] - scaled[first], axis=1)  # to the nearest taken
        order.append(int(first))
        while len(rest):
            k = int(np.argmax(gap))
            order.append(int(rest[k]))
            rest, gap = np.delete(rest, k), np.delete(gap, k)
            gap = np.minimum(gap, np.linalg.norm(scaled[rest] - scaled[order[-1]], axis=1))
    return np.array(order)


Stop = FrontStop | SuccessiveHalving


@dataclass(frozen=True)
class ScreenRun:
    """The zero-shot screen as a replay's screened strategies meet it, decided as `search
    --screen` decides it (`mode`): whether the sampler reads it (`ran`), the seconds charged for
    it once, the whole screen's measured seconds and, with `auto`, the seconds it is allowed:
    SCREEN_SHARE of the budget's trials at the full model's trial. Past that the product stops
    the screen after its first PROGRESS_EVERY keep sets (from which it projects the whole) and
    goes on without it; so does the replay, and charges that stretch."""

    mode: str
    ran: bool
    charged_s: float
    whole_s: float
    allowed_s: float | None = None

    @classmethod
    def decide(cls, table: Table, budget: int, mode: str = "auto") -> ScreenRun:
        if mode not in SCREENS:
            raise AutoPruneError(f"--screen {mode!r} is unknown; use {', '.join(SCREENS)}")
        whole, space = table.screen_cost, table.space
        if mode != "auto":
            return cls(mode, mode == "on", whole if mode == "on" else 0.0, whole)
        allowed = SCREEN_SHARE * budget * table.full_trial_s
        if whole <= allowed or space.size < PROGRESS_EVERY:  # too few to project: screened
            return cls(mode, True, whole, whole, allowed)
        # a sampled table's screen covered every keep set of the space, as search's does
        screened = all_keep_sets(space) if space.size <= EXHAUSTIVE_LIMIT else table.keeps
        spent = applications(screened).cumsum()
        stretch = float(spent[PROGRESS_EVERY - 1] / spent[-1])
        return cls(mode, False, whole * stretch, whole, allowed)

    def said(self) -> str:
        """The replay's log line about the screen."""
        if self.mode == "off":
            return "the screened strategies replay without the zero-shot screen (--screen off)"
        if not self.ran:
            return (
                f"{skipped_sentence(self.whole_s, self.allowed_s)} The replay does as `search` "
                f"does, and charges the first {PROGRESS_EVERY} keep sets' {self.charged_s:.1f} s."
            )
        said = f"the screened strategies pay the zero-shot screen once: {self.whole_s:.1f} s"
        return said + (f" ({self.allowed_s:.0f} s allowed)" if self.allowed_s is not None else "")


@dataclass
class Plan:
    """One seed of a strategy: its sampler (warm started from another table, or not), keep sets
    enqueued first (one-shot prior or screen seeds), what it pays for the zero-shot screen
    (once) and how it stops keep sets early at the rungs (multi-fidelity), if it does."""

    sampler: optuna.samplers.BaseSampler
    seeds: list[tuple[int, ...]] = field(default_factory=list)
    screen_s: float = 0.0
    stop: Stop | None = None


Strategy = Callable[[Table, int, ScreenRun], Plan]


def _strategy(
    name: str,
    seeds: Callable[[Table], list] | None = None,
    warm: dict[str, dict] | None = None,
    stop: Callable[[], Stop] | None = None,
    screened: bool = True,
    seeds_from_screen: bool = False,
) -> Strategy:
    """A registered sampler (`samplers.SAMPLERS`) on a table; the screened sampler reads the
    screen and pays for it as the replay's ScreenRun says; `seeds`, keep sets enqueued first
    (one-shot, from a table's priors or, with `seeds_from_screen`, its screen, which is then
    paid whole, whatever `--screen` says); `stop` makes each seed's stop rule (multi-fidelity).
    `screened=False`: the screened sampler without the screen (`search --screen off`): every
    keep set's screen alike, nothing paid for it."""

    def plan(table: Table, seed: int, screen_run: ScreenRun) -> Plan:
        asked = []

        def screen() -> Screen:
            asked.append(screened)
            read = screened and screen_run.ran
            values = table.screen if read else np.ones(len(table.keeps))
            pool = Pool.build(table.keeps, table.values[:, 1:], values, table.num_layers)
            return Screen(pool, np.ones(table.values.shape[1]), table.reference, 0, warm or {})

        sampler = build_sampler(name, SamplerContext(seed, screen, table.space))
        first = seeds(table) if seeds else []
        paid = screen_run.charged_s if any(asked) else 0.0
        if seeds_from_screen:
            paid = table.screen_cost
        return Plan(sampler, first, paid, stop() if stop else None)

    return plan


def warm_knowledge(source: Table, trials: int | None = WARM_TRIALS) -> dict[tuple[int, ...], float]:
    """What a finished study on `source` knows: the keep sets the default strategy (its screen
    `auto`) trained there in `trials` full-budget trials, with their normalised accuracy;
    `trials=None`: every keep set of the table, more than any study there could tell
    (`scripts/warm_ceiling.py`)."""
    if trials is None:
        return {keep: float(v) for keep, v in zip(source.keeps, source.values[:, 0], strict=True)}
    stop = FrontStop if source.rungs else None
    trained = replay_one(source, _strategy("screened", stop=stop), 0, trials)[3]
    return {keep: float(source.values[source.keeps.index(keep), 0]) for keep in trained}


OFF_THE_SHELF = ("random", "tpe-independent", "tpe", "nsga2", "gp")
# the strategies of the screened sampler, which proposes from a pool: the table's keep sets
FROM_THE_TABLE = ("screened", "unscreened")


def strategies(
    table: Table,
    warm_from: Sequence[Table] = (),
    warm_trials: int | None = WARM_TRIALS,
    from_the_table: bool = True,
) -> dict[str, Strategy]:
    """Every replayable strategy of `table`; the warm-started ones from `warm_from`, other
    tables of the same model (several: one prior each, as `search --warm-start A,B` does).
    A partial table replays only the strategies that propose from its keep sets (unless
    `from_the_table` is False: what a whole table would replay)."""
    result = {name: _strategy(name) for name in OFF_THE_SHELF}
    for method, scores in table.meta["priors"].items():
        result[f"tpe+{method}"] = _strategy("tpe", lambda t, s=scores: t.one_shot(s))
    result["tpe+screen"] = _strategy("tpe", Table.top_screen, seeds_from_screen=True)
    result["screened"] = _strategy("screened")
    if table.rungs:
        result["screened-mf"] = _strategy("screened", stop=FrontStop)
        result["unscreened-mf"] = _strategy("screened", stop=FrontStop, screened=False)
        result["gp-mf"] = _strategy("gp", stop=FrontStop)
        result["moasha"] = _strategy("random", stop=SuccessiveHalving)
        result["screened+moasha"] = _strategy("screened", stop=lambda: SuccessiveHalving(True))
    if warm_from:
        # keyed by place and dataset: two tables of one dataset (other settings) stay two
        warm = {f"{i}-{t.name}": warm_knowledge(t, warm_trials) for i, t in enumerate(warm_from)}
        result["screened+warm"] = _strategy("screened", warm=warm)
        if table.rungs:
            result["screened-mf+warm"] = _strategy("screened", warm=warm, stop=FrontStop)
    if table.partial and from_the_table:  # the others propose from the whole space
        result = {name: s for name, s in result.items() if name.startswith(FROM_THE_TABLE)}
    return result


def unavailable(name: str, table: Table, warm_from: Sequence[Table], known) -> str:
    """Why `name` is not a strategy of this replay: a table without rungs has no multi-fidelity
    strategy, a partial table none that proposes from the whole space, and a warm-started one
    needs the other table; else the name is unknown."""
    if ("-mf" in name or name.endswith("moasha")) and not table.rungs:
        return (
            f"replay strategy {name!r} needs the table's rung fidelities, and this table has none "
            "(it was built before rungs existed): rebuild it with `autoprune bench truth` "
            "(resumable), or replay 'screened'"
        )
    if table.partial and name in strategies(table, from_the_table=False):
        return (
            f"replay strategy {name!r} proposes keep sets from the whole space, and this table "
            f"holds {len(table.keeps):,} of its {table.space.size:,} (a sample, or a build not "
            "finished): finish it with `autoprune bench truth` (resumable, without --sample), or "
            f"replay the strategies that propose from the table's keep sets: {', '.join(known)}"
        )
    if name in SEED_FREE and name.endswith("+warm") and not warm_from:
        return (
            f"replay strategy {name!r} needs --warm-start TABLE: a table of the same model on "
            "another dataset, whose keep sets give the prior"
        )
    return f"unknown replay strategy {name!r}; known: {', '.join(known)}"


def replay_one(
    table: Table,
    strategy: Strategy,
    seed: int,
    budget: int,
    ledger: list | None = None,
    screen: ScreenRun | None = None,
) -> tuple[list[float], list[float], float, list[tuple[int, ...]]]:
    """Hypervolume ratio after each distinct keep set one seed of a strategy trains to the full
    budget, the compute seconds spent by then, the share of the true front it found, and the
    keep sets it trained in order.

    It runs until `budget` distinct keep sets are trained to the full budget; a repeated keep
    set costs nothing, as in a real study. Compute charged: the screen once if the strategy
    screens (as `screen` decided, by default `ScreenRun.decide(table, budget)`: the whole of
    it, or only its first stretch where `search` would skip it), the rung of every keep set it
    stops, and the full re-alignment (with rung evaluations, when multi-fidelity) of every keep
    set it trains; `ledger`, when given, gets each of those charges in order as (keep set or
    None for the screen, "screen", "stopped" or "full", seconds), for
    `scripts/compute_breakdown.py`."""
    ledger = [] if ledger is None else ledger
    plan = strategy(table, seed, screen or ScreenRun.decide(table, budget))
    sampler, seeds = plan.sampler, plan.seeds
    row = {k: i for i, k in enumerate(table.keeps)}
    lookup = {k: v for k, v in zip(table.keeps, table.values, strict=True)}
    space = table.space
    study = optuna.create_study(directions=["minimize"] * table.values.shape[1], sampler=sampler)
    for keep in seeds:
        study.enqueue_trial(space.params_of(keep))
    seen: dict[tuple[int, ...], np.ndarray] = {}
    curve: list[float] = []
    if plan.screen_s:
        ledger.append((None, "screen", plan.screen_s))
    compute: list[float] = []
    lookups = 0  # a study stops after this many look-ups in a row, as `search` does
    budget = min(budget, len(lookup))
    evaluated = None if plan.stop is None else plan.stop.evaluated(table)
    while len(seen) < budget and lookups < MAX_LOOKUPS_IN_A_ROW:
        trial = study.ask()
        keep = suggest_keep(trial, space)
        mark(trial, keep=list(keep))
        values = lookup[keep]
        pruned = (optuna.trial.TrialState.PRUNED,)
        again = (
            plan.stop is not None
            and keep not in seen
            and stopped_before(study.get_trials(deepcopy=False, states=pruned), keep)
        )
        lookups = lookups + 1 if keep in seen or (again and not plan.stop.again) else 0
        if keep in seen:
            study.tell(trial, values.tolist())
            continue
        if again and not plan.stop.again:  # stopped once, stopped again at no cost
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        i = row[keep]
        rungs = {str(s): {"mase": float(v[i])} for s, v in table.rungs.items()}
        mark(trial, rungs=rungs)
        if plan.stop is not None and not again and (stopped := plan.stop(table, study, i, values)):
            ledger.append((keep, "stopped", table.stopped_cost(i, stopped, evaluated)))
            mark(trial, stopped_at=stopped)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        ledger.append((keep, "full", table.full_cost(i, evaluated)))
        seen[keep] = values
        points = np.array(list(seen.values()))
        curve.append(hypervolume(points[non_dominated(points)], table.reference) / table.true_hv)
        compute.append(sum(seconds for _, _, seconds in ledger))  # spent so far
        study.tell(trial, values.tolist())
        if curve[-1] >= 1 - 1e-12:
            break  # the true front is found: nothing a later trial does changes a figure
    return curve, compute, len(table.true_front & set(seen)) / len(table.true_front), list(seen)


def _trials_to(curves: list[list[float]], level: float) -> dict:
    """Trials each seed needed to reach `level` of the true hypervolume; a seed that never did
    (budget spent, or stalled on look-ups) counts as infinitely many, so the median is None
    when half the seeds or more never got there."""
    hits = [next((i + 1 for i, v in enumerate(c) if v >= level - 1e-9), np.inf) for c in curves]
    with np.errstate(invalid="ignore"):  # inf - inf between two unreached seeds: None below
        median = float(np.median(hits))
        q1, q3 = np.percentile(hits, [25, 75])
    return {
        "median": median if np.isfinite(median) else None,
        "iqr": [float(q) if np.isfinite(q) else None for q in (q1, q3)],
        "reached": f"{int(np.isfinite(hits).sum())}/{len(hits)}",
    }


def compute_hits(
    curves: list[list[float]], computes: list[list[float]], level: float
) -> list[float]:
    """Compute seconds each seed had spent when it reached `level` (inf: never)."""
    return [
        next((s for v, s in zip(c, cost, strict=True) if v >= level - 1e-9), np.inf)
        for c, cost in zip(curves, computes, strict=True)
    ]


def budget_capped(
    curves: list[list[float]], computes: list[list[float]], level: float
) -> tuple[np.ndarray, np.ndarray]:
    """`compute_hits` as an array, and the same with each seed that never reached `level`
    counted at the compute of its whole budget: a lower bound of what it would have needed."""
    hits = np.array(compute_hits(curves, computes, level), dtype=float)
    spent = np.array([c[-1] for c in computes])  # a seed always trains its first keep set
    return hits, np.where(np.isfinite(hits), hits, spent)


def compute_to(curves: list[list[float]], computes: list[list[float]], level: float) -> dict:
    """Compute seconds each seed had spent when it reached `level`; None as in _trials_to."""
    hits = compute_hits(curves, computes, level)
    with np.errstate(invalid="ignore"):
        median = float(np.median(hits))
        q1, q3 = np.percentile(hits, [25, 75])
    return {
        "median": round(median, 1) if np.isfinite(median) else None,
        "iqr": [round(float(q), 1) if np.isfinite(q) else None for q in (q1, q3)],
    }


def summarise(
    table: Table,
    curves: list[list[float]],
    recalls: list[float],
    budget: int,
    computes: list[list[float]],
) -> dict:
    """One strategy over its seeds: hypervolume ratio to the true front after each of
    CHECKPOINTS trained keep sets, trained keep sets and compute seconds to reach each of
    LEVELS of the true hypervolume (median and IQR), and front recall at the budget."""
    at = {}
    for n in CHECKPOINTS:
        values = [c[min(n, len(c)) - 1] for c in curves]
        at[str(n)] = {
            "median": float(np.median(values)),
            "iqr": [float(np.percentile(values, 25)), float(np.percentile(values, 75))],
        }
    return {
        "hv_ratio_at": at,
        **{f"trials_to_{round(100 * level)}": _trials_to(curves, level) for level in LEVELS},
        "stalled": sum(len(c) < min(budget, len(table.keeps)) and c[-1] < 1 for c in curves),
        **{
            f"compute_s_to_{round(100 * level)}": compute_to(curves, computes, level)
            for level in LEVELS
        },
        "front_recall_at_budget": float(np.median(recalls)),
    }


# replayed only when named: Optuna's GP sampler refits its kernel every trial (minutes per seed
# at these budgets, on 2 cores; `gp-mf` is it with the product's rung, what `search --sampler gp`
# runs); the default sampler without its screen is what `search --screen off` (and `auto` where
# the screen costs too much) runs, not a strategy of its own
ON_REQUEST = ("gp", "gp-mf", "unscreened-mf")
# strategies that take no seed (the screened sampler is deterministic for a table): replayed once
SEED_FREE = (
    "screened",
    "screened-mf",
    "unscreened-mf",
    "screened+moasha",
    "screened+warm",
    "screened-mf+warm",
)


def measurable(table: Table, which: str = "") -> Table:
    """`table`, refused when its true hypervolume is 0: no strategy's progress can be measured."""
    if table.true_hv <= 0:
        raise AutoPruneError(
            f"no keep set of this table{which} re-aligns to within {ACCURACY_REFERENCE:g}x the "
            f"full model's val {table.meta['objectives'][0]} (the hypervolume's reference "
            "point): its true hypervolume is 0, so no strategy's progress toward it can be "
            "measured"
        )
    return table


def run(
    table: Table,
    seeds: int,
    budget: int,
    only: list[str] | None = None,
    log=print,
    warm_from: Sequence[Table] = (),
    noise: float = 0.0,
    screen: str = "auto",
    on_seed: Callable[[str, int, int], None] = lambda name, done, total: None,
) -> dict:
    """Every strategy (or those in `only`) over `seeds` seeds (SEED_FREE ones once),
    summarised; and per prior, the share of the true front its one-shot keep sets find alone.
    With `noise`, seed s of every strategy (SEED_FREE ones too) replays on the sibling table
    `table.perturbed(s, noise)`, so every strategy meets the same near-ties, drawn anew per seed.
    `screen`: the screened sampler's zero-shot screen, as `search --screen` (ScreenRun).
    `on_seed(strategy, seeds done, seeds)`: before a strategy's first seed and after each."""
    measurable(table)
    known = strategies(table, warm_from)
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise UnknownNameError(unavailable(unknown[0], table, warm_from, known))
    if not only:
        only = [name for name in known if name not in ON_REQUEST]
        named = [name for name in ON_REQUEST if name in known]
        log(
            f"replaying {', '.join(only)}"
            + (f"; {', '.join(named)} only with --strategy" if named else "")
        )
    if table.partial:
        log(
            f"this table holds {len(table.keeps):,} of its space's {table.space.size:,} keep "
            "sets: only the strategies that propose from them are replayed"
        )
    screen_run = ScreenRun.decide(table, budget, screen)
    if any(name.startswith("screened") for name in only):
        log(screen_run.said())
    results = {}
    for name, strategy in known.items():
        if name not in only:
            continue
        start = time.perf_counter()
        curves, recalls, computes = [], [], []
        count = 1 if name in SEED_FREE and not noise else seeds
        on_seed(name, 0, count)
        for seed in range(count):
            sibling = measurable(table.perturbed(seed, noise), f" (sibling {seed} of --noise)")
            curve, compute, recall, _ = replay_one(
                sibling, strategy, seed, budget, None, screen_run
            )
            curves.append(curve)
            computes.append(compute)
            recalls.append(recall)
            on_seed(name, seed + 1, count)
        results[name] = {
            **summarise(table, curves, recalls, budget, computes),
            "seconds": round(time.perf_counter() - start, 1),
            "curves": [[round(v, 5) for v in c] for c in curves],
            "compute_s": [[round(v, 2) for v in c] for c in computes],
        }
        r = results[name]
        reached = (
            f"{r[f'trials_to_{p}']['median']:.0f} trials / {r[f'compute_s_to_{p}']['median']} s "
            f"to {p}%"
            if r[f"trials_to_{p}"]["median"] is not None
            else f"{p}% not reached by most seeds ({r[f'trials_to_{p}']['reached']})"
            for p in (round(100 * level) for level in LEVELS)
        )
        log(f"{name:>18} (median): {', '.join(reached)} ({r['seconds']:.0f} s)")
    without = table.hv_without()
    hinge, most = min(without.items(), key=lambda item: item[1])
    log(
        f"without true-front keep set [{hinge}] at most {most:.1%} of the true hypervolume can "
        "be reached"
    )
    one_shot = {
        method: len(set(table.one_shot(s)) & table.true_front) / len(table.true_front)
        for method, s in table.meta["priors"].items()
    }
    one_shot["screen"] = len(set(table.top_screen()) & table.true_front) / len(table.true_front)
    return {
        "optuna": optuna.__version__,  # its samplers' behaviour changes between releases
        "warm_start_from": "+".join(t.meta["dataset"] for t in warm_from) or None,
        "screen_cost_s": table.screen_cost,
        "screen": asdict(screen_run),
        "true_front_size": len(table.true_front),
        "space_size": len(table.keeps),
        "true_front": sorted(list(k) for k in table.true_front),
        "hv_without": without,
        "seeds": seeds,
        "noise": noise,
        "budget": budget,
        "one_shot_front_share": one_shot,
        "strategies": results,
    }


def read(path: Path) -> dict:
    """A replay's JSON (what `write` wrote); AutoPruneError naming the file if it cannot be
    read or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:  # missing, unreadable or not JSON
        raise AutoPruneError(f"cannot read a replay from {path}: {error}") from error


def replay_files(paths: Sequence[Path]) -> list[Path]:
    """The replay files `paths` name (a folder: its replay-*.json, not its subfolders), each
    once; AutoPruneError for a folder without any."""
    files: list[Path] = []
    for path in map(Path, paths):
        found = sorted(path.glob("replay-*.json")) if path.is_dir() else [path]
        if not found:
            raise AutoPruneError(f"no replay-*.json in {path}")
        files += [f for f in found if f.resolve() not in {g.resolve() for g in files}]
    return files


def paired(
    base: dict, new: dict, strategy: str, new_strategy: str | None = None, first_seed: int = 0
) -> dict:
    """`new_strategy` (default `strategy`) of replay `new` against `strategy` of replay `base`,
    seed by seed: both must have replayed the same table with the same seeds and noise, so
    seed s met the same sibling table in both. Per level of the true hypervolume: the geometric
    mean over seeds of new's compute over base's, and on how many seeds new needed less or
    more. A seed that never reached a level counts the compute of its whole budget, a lower
    bound (`censored` counts them); a seed neither reached is left out. `first_seed` leaves the
    seeds before it out: siblings a change was not chosen on, when it was chosen on those."""
    new_strategy = new_strategy or strategy

    def named(value):  # a table by its file name: one replay may name it from elsewhere
        return Path(value).name if isinstance(value, str) else value

    # the siblings are drawn from these alone, so two warm starts (or a warm start and none)
    # on one table compare seed by seed too
    for key in ("truth", "seeds", "noise"):
        if named(base.get(key)) != named(new.get(key)):
            raise AutoPruneError(
                f"not paired: the replays differ in {key} ({base.get(key)!r} against "
                f"{new.get(key)!r}); replay the same table with the same --seeds and --noise"
            )
    runs = []
    for result, name in ((base, strategy), (new, new_strategy)):
        if name not in result["strategies"]:
            known = ", ".join(result["strategies"])
            raise AutoPruneError(f"strategy {name!r} is not in that replay; it has: {known}")
        runs.append(result["strategies"][name])
    if len(runs[0]["curves"]) != len(runs[1]["curves"]):
        raise AutoPruneError(
            f"not paired: {strategy!r} ran {len(runs[0]['curves'])} seed(s) and {new_strategy!r} "
            f"{len(runs[1]['curves'])} (a deterministic strategy runs every seed only with --noise)"
        )
    if not 0 <= first_seed < len(runs[0]["curves"]):
        raise AutoPruneError(
            f"first seed {first_seed} is not among the replays' {len(runs[0]['curves'])} seed(s)"
        )
    levels = {}
    for level in LEVELS:
        found = [
            budget_capped(r["curves"][first_seed:], r["compute_s"][first_seed:], level)
            for r in runs
        ]
        hits, capped = zip(*found, strict=True)
        both = np.isfinite(hits[0]) | np.isfinite(hits[1])
        log_ratio = np.log(capped[1][both] / capped[0][both])
        mean = round(float(np.exp(log_ratio.mean())), 3) if both.any() else None
        levels[str(round(100 * level))] = {
            "geometric_mean_ratio": mean,
            "new_less": int((log_ratio < 0).sum()),
            "new_more": int((log_ratio > 0).sum()),
            "seeds": int(both.sum()),
            "censored": int(sum((~np.isfinite(h) & both).sum() for h in hits)),
        }
    return {
        "truth": base.get("truth"),
        "noise": base.get("noise"),
        "base": strategy,
        "new": new_strategy,
        "warm_start_from": [base.get("warm_start_from"), new.get("warm_start_from")],
        "first_seed": first_seed,
        "levels": levels,
    }


def write(result: dict, out: Path) -> Path:
    """The result as JSON, and beside it a PNG of the median hypervolume curves."""
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, by_compute) = plt.subplots(1, 2, figsize=(13, 5))
    for name, r in result["strategies"].items():
        longest = max(len(c) for c in r["curves"])
        padded = np.array([c + [c[-1]] * (longest - len(c)) for c in r["curves"]])
        x = np.arange(1, longest + 1)
        style = "-" if name.startswith("screened") or name in ("tpe", "random", "nsga2") else ":"
        own = {"lw": 2.2} if name.startswith("screened") else {"lw": 1.2}
        ax.plot(x, np.median(padded, axis=0), style, label=name, **own)
        # by compute: the median over seeds of the hypervolume reached by each spend
        spend = np.linspace(0, max(c[-1] for c in r["compute_s"]), 200)
        reached = [
            np.r_[0.0, v][np.searchsorted(c, spend, side="right")]
            for c, v in zip(r["compute_s"], r["curves"], strict=True)
        ]
        by_compute.plot(spend, np.median(reached, axis=0), style, label=name, **own)
    for axis in (ax, by_compute):
        axis.axhline(0.95, color="grey", lw=0.8, ls="--")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    ax.set_xlabel("keep sets trained to the full budget")
    ax.set_ylabel("hypervolume / true hypervolume (median over seeds)")
    by_compute.set_xlabel("compute seconds (screen, rungs, full re-alignments)")
    by_compute.set_xscale("log")
    fig.suptitle(
        f"{result['truth']}: {result['seeds']} seeds, true front "
        f"{result['true_front_size']} of {result['space_size']} keep sets",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return atomic_write_figure(out.with_suffix(".png"), fig, dpi=110)


def replay_truth(
    truth: Path | None,
    seeds: int,
    budget: int,
    only: list[str] | None,
    folder: Path,
    warm_start: Sequence[Path] = (),
    log=print,
    noise: float = 0.0,
    screen: str = "auto",
    on_seed: Callable[[str, int, int], None] = lambda name, done, total: None,
) -> tuple[Path, Path]:
    """`autoprune bench replay`: every strategy replayed on a ground-truth table file (warm
    started from other tables of the same model, if given); returns the JSON and PNG written
    to `folder`. `on_seed` as for `run`."""
    if truth is None or not truth.is_file():
        raise AutoPruneError(
            f"--truth {truth} is not a file; build one with `autoprune bench truth`"
        )
    if seeds < 1 or budget < 1:
        raise AutoPruneError("--seeds and --budget must be at least 1")
    if not 0 <= noise < 1:
        raise AutoPruneError(f"--noise {noise} must be in [0, 1): a log-scale spread, e.g. 0.01")
    table = Table.load(*load_truth(truth))
    warm_from = []
    for path in warm_start:
        if not path.is_file():
            raise AutoPruneError(f"--warm-start {path} is not a truth table file")
        if path.resolve() == truth.resolve():
            raise AutoPruneError(
                f"--warm-start {path} is the replayed table itself; a warm start knows another"
            )
        source = Table.load(*load_truth(path))
        if not same_model(source.meta, table.meta):
            raise AutoPruneError(
                f"--warm-start {path} is a table of {model_named(source.meta)}, not "
                f"{model_named(table.meta)}; a warm start needs the same model"
            )
        warm_from.append(source)
    result = run(table, seeds, budget, only, log, warm_from, noise, screen, on_seed)
    result["truth"] = str(truth)
    stem = truth.stem.replace("truth-", "replay-")
    if warm_from:
        stem += "-warm-" + "+".join(t.name for t in warm_from)
    if noise:
        stem += f"-noise{noise:g}"
    target = folder / f"{stem}.json"
    return target, write(result, target)
