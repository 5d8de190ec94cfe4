"""The search-efficiency targets, read off `autoprune bench replay` results (README, "Search
efficiency"): per table and noise level, the default strategy's compute to 95% of the true
hypervolume against the best off-the-shelf Optuna sampler's (target: at most one third), the
same with a warm start from another table (at most one fifth), and its compute to the whole
true front against that sampler's to 95% (at most as much).

A median that most seeds never reached within the replay's budget is known only as a bound: the
seeds that missed count the compute of their whole budget, so the median is more than that.
A ratio with a bound on either side is a bound, and a verdict is given only where it is decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoprune.bench.replay import budget_capped
from autoprune.errors import AutoPruneError

DEFAULT = "screened-mf"
WARM = "screened-mf+warm"
OFF_THE_SHELF = ("random", "tpe-independent", "tpe", "nsga2", "gp")  # Optuna's own samplers
TARGETS = {"95": 1 / 3, "warm 95": 1 / 5, "100": 1.0}  # the default's compute over the best's


@dataclass(frozen=True)
class Compute:
    """Median compute seconds over a replay's seeds to a share of the true hypervolume;
    `exact` False: most seeds never got there, so the median is more than `seconds`."""

    seconds: float
    exact: bool

    @classmethod
    def of(cls, run: dict, level: float) -> Compute:
        """Where most seeds got there, the median of their compute (a seed that missed ranks
        last, whatever it spent: one that stalled on look-ups spent less than the others); else
        the median with each missed seed at its whole budget, a lower bound."""
        hits, capped = budget_capped(run["curves"], run["compute_s"], level)
        median = np.median(hits)
        exact = bool(np.isfinite(median))
        return cls(float(median if exact else np.median(capped)), exact)

    def __str__(self) -> str:
        return f"{self.seconds:.0f} s" if self.exact else f"> {self.seconds:.0f} s"


def ratio(new: Compute, best: Compute) -> tuple[float, str]:
    """new / best and what is known of it: "=" exact, "<=" at most, ">=" at least, "?" nothing
    (both are lower bounds)."""
    value = new.seconds / best.seconds if best.seconds > 0 else float("inf")
    kind = {(True, True): "=", (True, False): "<=", (False, True): ">="}
    return value, kind.get((new.exact, best.exact), "?")


def check(compute: Compute, best: Compute, target: float) -> dict:
    """`compute` against the yardstick `best`: the ratio, what is known of it and whether it
    is at most `target` ("met", "met (bound)", "not met" or "undecided")."""
    value, kind = ratio(compute, best)
    if kind in ("=", "<=") and value <= target:
        verdict = "met" if kind == "=" else "met (bound)"
    elif kind in ("=", ">=") and value > target:
        verdict = "not met"
    else:
        verdict = "undecided"
    return {"compute": str(compute), "ratio": value, "kind": kind, "verdict": verdict}


def yardstick(replay: dict) -> dict:
    """`replay` with only the off-the-shelf samplers' runs: an earlier day's replays serve as the
    yardstick beside a replay of today's default, whose own run there is of an earlier default."""
    runs = replay.get("strategies") if isinstance(replay, dict) else None
    if not isinstance(runs, dict):
        return replay  # not a replay: `targets` says so
    return {**replay, "strategies": {n: r for n, r in runs.items() if n in OFF_THE_SHELF}}


def grouped(replays: list[tuple[str, dict]]) -> dict[tuple[str, float], dict]:
    """Replays by (table file name, noise): per (strategy, warm-start source or None), the
    replay it came from and its run. Of a warm-started replay only the default is warm-started
    here; its other strategies that start cold count as plain runs of the same siblings."""
    groups: dict[tuple[str, float], dict] = {}
    for source, replay in replays:
        try:
            key = (Path(replay["truth"]).name, float(replay.get("noise") or 0.0))
            runs = replay["strategies"]
        except (KeyError, TypeError) as error:
            raise AutoPruneError(f"{source} is not an `autoprune bench replay` result") from error
        group = groups.setdefault(key, {})
        for name, run in runs.items():
            if name.endswith("+warm") and name != WARM:
                continue
            warm = replay.get("warm_start_from") if name == WARM else None
            if (name, warm) in group:
                raise AutoPruneError(
                    f"two replays of {name} on {key[0]} (noise {key[1]:g}"
                    f"{', warm from ' + warm if warm else ''}): {group[name, warm][0]} "
                    f"and {source}; pass one of them"
                )
            group[name, warm] = (source, run)
    return groups


def best_of(runs: dict, names: Sequence[str] = OFF_THE_SHELF) -> tuple[str, Compute] | None:
    """Of the samplers `names` among `runs` (strategy -> a replay's run), the yardstick: the one
    with the least compute to 95%, one whose median got there before one known only as a bound;
    None if none of them was replayed."""
    shelf = {name: Compute.of(runs[name], 0.95) for name in names if name in runs}
    if not shelf:
        return None
    best = min(shelf, key=lambda n: (not shelf[n].exact, shelf[n].seconds))
    return best, shelf[best]


def targets(replays: list[tuple[str, dict]], against: str | None = None) -> list[dict]:
    """Per table and noise level, the three targets (rows for the README's table). `replays`:
    (where it came from, the replay's JSON); `against`: one off-the-shelf sampler to compare
    with (default: the best of those replayed on each table)."""
    if against is not None and against not in OFF_THE_SHELF:
        raise AutoPruneError(
            f"--against {against}: not an off-the-shelf sampler; one of {', '.join(OFF_THE_SHELF)}"
        )
    rows = []
    for (table, noise), group in sorted(grouped(replays).items()):
        runs = {name: run for (name, warm), (_, run) in group.items() if warm is None}
        warm_runs = {warm: run for (_, warm), (_, run) in group.items() if warm is not None}
        names = [against] if against else OFF_THE_SHELF
        found = best_of(runs, names)
        row = {"table": table, "noise": noise, "compared": sorted(n for n in names if n in runs)}
        if found is None or DEFAULT not in runs:
            missing = (against or "an off-the-shelf sampler") if found is None else DEFAULT
            rows.append({**row, "missing": missing})
            continue
        best_name, best = found
        checks = {
            level: check(Compute.of(runs[DEFAULT], share), best, TARGETS[level])
            for level, share in (("95", 0.95), ("100", 1.0))
        }
        for origin, run in sorted(warm_runs.items()):
            checks[f"warm 95 from {Path(origin).stem}"] = check(
                Compute.of(run, 0.95), best, TARGETS["warm 95"]
            )
        rows.append({**row, "best": best_name, "best_95": str(best), "checks": checks})
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table: each cell compute, ratio to the best off-the-shelf
    sampler's compute to 95%, verdict."""
    lines = [
        "| table | noise | off-the-shelf sampler to 95% (the best of) "
        "| default to 95% (target 1/3) | default to 100% (target 1x) "
        "| warm-started default to 95% (target 1/5) |",
        "|---|---|---|---|---|---|",
    ]

    def cell(check: dict) -> str:
        sign = "" if check["kind"] == "=" else f"{check['kind']} "
        ratio_text = "?" if check["kind"] == "?" else f"{sign}{check['ratio']:.2f}x"
        return f"{check['compute']}, {ratio_text}, {check['verdict']}"

    for row in rows:
        head = f"| {row['table']} | {row['noise']:g} |"
        if "missing" in row:
            lines.append(f"{head} no replay of {row['missing']} | | | |")
            continue
        checks = row["checks"]
        warm = "; ".join(
            f"{name.removeprefix('warm 95 from ')}: {cell(c)}"
            for name, c in checks.items()
            if name.startswith("warm")
        )
        lines.append(
            f"{head} {row['best']} {row['best_95']} ({', '.join(row['compared'])}) | "
            f"{cell(checks['95'])} | {cell(checks['100'])} | {warm or '-'} |"
        )
    return "\n".join(lines)
