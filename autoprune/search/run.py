"""`autoprune search`: options -> reference and priors -> the study's sampler -> backend ->
selection and test. Trial code lives in `objective`; this module only orders the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import optuna
from optuna.samplers import BaseSampler

from autoprune import baselines
from autoprune.backends import local
from autoprune.importance import METHODS
from autoprune.metrics import METRICS, accuracy_index
from autoprune.multifidelity import Pool
from autoprune.objective import predict_latency
from autoprune.pareto import (
    hv_reference,
)
from autoprune.record import TrialRecord
from autoprune.report import HELD, collect, counted, first_held, settled_at, write_report
from autoprune.samplers import Beating, SamplerContext, Screen, build_sampler
from autoprune.screen import SCREEN_SHARE, ScreenTooDear, candidate_pool, skipped_sentence
from autoprune.search.cached import ensure_reference, front_test, priors, screen_table
from autoprune.search.finalize import finalize
from autoprune.search.front import selection_is_current, study_rule
from autoprune.search.options import (
    DEFAULT_TRIALS,
    DEFAULT_TRIALS_MAX,
    SearchOptions,
    prepare,
    prepared_from_study,
    ray_options,
)
from autoprune.search.prepared import Prepared
from autoprune.study import (
    REFERENCE_ATTR,
    SCREEN_SKIPPED_ATTR,
    WENT_ON_ATTR,
    full_values,
    hypervolume_curve_of,
    load_study,
    search_seconds,
    stopped_trials,
    storage_url,
    study_dir,
    trained_trials,
)


def study_sampler(
    prep: Prepared, log: Callable[[str], None] = print, allowed_s: float | None = None
) -> BaseSampler:
    """The study's sampler, built by name once the full-model reference exists (the screened
    sampler's pool is normalised by it), beating for each trial it is asked for. Seeded with the
    study seed plus the trials stored. `allowed_s`: the seconds the zero-shot screen may take
    (`screen_allowance`; None: no limit)."""
    seed = prep.settings["seed"] + len(prep.study.get_trials(deepcopy=False))
    context = SamplerContext(seed, lambda: screen_knowledge(prep, log, allowed_s), prep.ctx.space)
    return Beating(build_sampler(prep.sampler, context))


def screen_allowance(prep: Prepared, trials: int, compute: float | None = None) -> float | None:
    """Seconds the screened sampler's zero-shot screen may take in this run: SCREEN_SHARE of
    the search's expected compute, the trials still to train times the full model's trial (its
    re-alignment, rungs and validation, measured before trial 1: more than a pruned keep
    set's), or the rest of a `--compute` budget if less. None with `--screen on` (no
    limit), 0 with `--screen off`."""
    mode = prep.settings.get("screen", "auto")
    if mode != "auto":
        return None if mode == "on" else 0.0
    trial_s = sum(prep.study.user_attrs[REFERENCE_ATTR]["realigned"]["timing"].values())
    expected = max(trials - len(trained_trials(prep.study)), 0) * trial_s
    if compute:
        expected = min(expected, compute - search_seconds(prep.study))
    return SCREEN_SHARE * max(expected, 0.0)


def screen_within(
    prep: Prepared, log: Callable[[str], None], allowed_s: float | None
) -> dict | None:
    """`screen_table`, within `allowed_s` seconds; None when the screen would cost more (or
    `--screen off`), said in the log and in the study (SCREEN_SKIPPED_ATTR). A screen already
    cached costs nothing and is always used; one projected past the allowance in an earlier run
    is not started again unless this run allows more."""
    skipped = prep.study.user_attrs.get(SCREEN_SKIPPED_ATTR) or {}
    if allowed_s is not None and (skipped.get("projected_s") or 0) > allowed_s:
        allowed_s = 0.0  # known to be dearer: only a cached screen is used
    try:
        table = screen_table(prep, log, allowed_s)
    except ScreenTooDear as dear:
        if prep.settings.get("screen") == "off":
            log("the screened sampler starts without the zero-shot screen (--screen off)")
            why = {"reason": "--screen off"}
        else:
            projected = dear.projected_s or skipped.get("projected_s")
            log(skipped_sentence(projected, dear.allowed_s, SCREEN_SHARE))
            why = {
                "reason": "budget",
                # unrounded: a resume compares it with its allowance (a tenth of a second
                # rounds a tiny model's projection to 0, and the screen started again)
                "projected_s": projected,
                "share": SCREEN_SHARE,
            }
        prep.study.set_user_attr(
            SCREEN_SKIPPED_ATTR, {**why, "allowed_s": round(dear.allowed_s, 1)}
        )
        return None
    if skipped:
        prep.study.set_user_attr(SCREEN_SKIPPED_ATTR, None)  # screened after all
    return table


def screen_knowledge(
    prep: Prepared, log: Callable[[str], None] = print, allowed_s: float | None = None
) -> Screen:
    """The zero-shot screen of the study's candidate pool, each keep set's costs and screen as
    ratios to the re-aligned full model's: what the screened sampler starts from. Without the
    screen (`screen_within`), every keep set's screen is the full model's, so the sampler's kernel
    reads only which layers each keeps."""
    ctx, objectives = prep.ctx, prep.settings["objectives"]
    table = screen_within(prep, log, allowed_s)
    everything = tuple(range(ctx.adapter.num_layers))
    if table is None:
        pool_sets = candidate_pool(ctx.space, prep.settings["seed"])
    else:
        pool_sets = [k for k in table if k != everything]
    reference = prep.study.user_attrs[REFERENCE_ATTR]["realigned"]
    full = np.array(full_values(prep.study.user_attrs[REFERENCE_ATTR], objectives))
    accuracy = accuracy_index(objectives)
    costs = [o for o in objectives if o not in METRICS]
    cost_values = np.array(
        [
            [
                (ctx.adapter.params(k) if o == "params" else predict_latency(ctx.profile, k))
                / reference[o]
                for o in costs
            ]
            for k in pool_sets
        ]
    )
    screen_values = (
        np.ones(len(pool_sets))
        if table is None
        else np.array([table[k]["mase"] for k in pool_sets]) / table[everything]["mase"]
    )
    pool = Pool.build(pool_sets, cost_values, screen_values, ctx.adapter.num_layers)
    hv_ref = hv_reference(objectives)
    ordered_ref = np.r_[hv_ref[accuracy], [hv_ref[objectives.index(o)] for o in costs]]
    return Screen(pool, full, ordered_ref, accuracy, prep.warm)


def search(
    opts: SearchOptions,
    log: Callable[[str], None] = print,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial | None], None] = lambda s, t: None,
    prepared: Prepared | None = None,
    on_target: Callable[[int], None] = lambda trials: None,
) -> dict:
    """Run or resume a study to `opts.trials` trained keep sets (without it, on past the default
    while the front is still growing: `growing_target`, said to `on_target`), then select and
    test."""
    prep = prepared or prepare(opts)
    start = time.perf_counter()
    ensure_reference(prep, log)
    priors(prep, list(METHODS), log)  # one calibration pass: the report's importance chart
    target = trial_target(opts, prep.ctx.space)
    if opts.continue_stopped:
        queued = enqueue_stopped(prep.study, prep.ctx.space)
        log(f"continuing {counted(queued, 'keep set')} stopped at a rung to the full budget")
        target = max(target, len(trained_trials(prep.study)) + queued)
    allowed = screen_allowance(prep, target, opts.compute)
    prep.study.sampler = study_sampler(prep, log, allowed)
    if opts.enqueue:
        kinds = [k.strip() for k in opts.enqueue.split(",") if k.strip()]
        if queued := baselines.enqueue_seeds(prep, kinds):
            log(f"queued {queued} one-shot keep sets ({', '.join(kinds)}) as the first trials")

    def run_to(target: int) -> str:
        if opts.backend == "ray":
            from autoprune.backends import ray as ray_backend

            url = storage_url(prep.name, opts.storage)
            return ray_backend.run(
                prep.study, prep.ctx, target, url, ray_options(opts), on_trial, opts.compute
            )
        return local.run(prep.study, prep.ctx, target, on_trial, opts.compute)

    def runtime():
        """Ray started (or joined) once for the search and each time it goes on."""
        if opts.backend != "ray":
            return nullcontext()
        from autoprune.backends import ray as ray_backend

        return ray_backend.session(ray_options(opts))

    with runtime():
        stopped = run_to(target)
        goes_on = not (opts.trials or opts.compute or opts.continue_stopped)
        while goes_on and stopped == "reached":
            curve = hypervolume_curve_of(prep.study, prep.settings["objectives"])
            if (more := growing_target(curve)) is None:
                break
            log(
                f"the front is still growing: it first held {HELD:.0%} of its hypervolume "
                f"after {first_held(curve) + 1} of its {len(curve)} trained trials; training on "
                f"to {more} (at most {DEFAULT_TRIALS_MAX} without --trials)"
            )
            went_on = prep.study.user_attrs.get(WENT_ON_ATTR) or {"from": len(curve)}
            went_on = {**went_on, "to": more, "most": DEFAULT_TRIALS_MAX}
            prep.study.set_user_attr(WENT_ON_ATTR, went_on)
            on_target(more)
            stopped = run_to(more)
    searched = time.perf_counter()
    selection = finalize(prep, prep.rule, log)
    return {
        "study": prep.name,
        "stopped": stopped,
        "selection": selection,
        "seconds": time.perf_counter() - start,
        # after the last trial: the selection (tested, its checkpoint written), the full model on
        # the test split, the held-out datasets
        "finalize_seconds": time.perf_counter() - searched,
    }


def growing_target(curve: list[float]) -> int | None:
    """Where a search without --trials, --compute or --continue-stopped goes on to once it holds
    its target, from its front's hypervolume after each trained trial: the trained keep sets at
    which the front, gaining nothing more, would no longer be still growing (`report.settled_at`,
    the report's finding), at most DEFAULT_TRIALS_MAX; None when the front has settled or the
    study holds that many."""
    more = min(settled_at(curve), DEFAULT_TRIALS_MAX)
    return more if more > len(curve) else None


def trial_target(opts: SearchOptions, space) -> int:
    """Trained keep sets the study should reach: `--trials`, else DEFAULT_TRIALS (then on while
    the front is still growing: `growing_target`) - or, with only a compute budget
    (`--compute`), as many as the space holds (the budget stops the search)."""
    if opts.trials:
        return opts.trials
    return space.size if opts.compute else DEFAULT_TRIALS


def enqueue_stopped(study: optuna.Study, space) -> int:
    """Queue every keep set stopped at a rung, and not trained since, for the full budget."""
    trained = {TrialRecord.of(t).keep_set for t in trained_trials(study)}
    stopped = {TrialRecord.of(t).keep_set for t in stopped_trials(study)}
    for keep in sorted(stopped - trained):
        study.enqueue_trial(space.params_of(keep), TrialRecord(full_budget=True).attrs())
    return len(stopped - trained)


def report(
    name: str,
    storage: str | None,
    out: Path | None = None,
    rule: str | None = None,
    test_front: bool = False,
    device: str = "auto",
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """`autoprune report`: select again if the rule or the front changed since (or the stored
    selection is missing), test the front on request, and write the report. Returns the files
    written and the findings."""
    study = load_study(name, storage)
    rule = study_rule(study, rule)
    if test_front or not selection_is_current(study, rule):
        prep = prepared_from_study(name, storage, device, threads)
        ensure_reference(prep, log)
        finalize(prep, rule, log)
        if test_front:
            estimate = collect(prep.study)["front_test_estimate"]
            if estimate["missing"]:
                log(
                    f"test metrics of {len(estimate['missing'])} front points: about "
                    f"{estimate['seconds']:.0f} s ({estimate['windows']:,} test windows each)"
                )
            front_test(prep, log)
        study = prep.study
    paths = write_report(study, out or study_dir(name) / "report")
    return {"paths": list(paths.values()), "findings": collect(study)["findings"]}


def run_baselines(
    name: str,
    storage: str | None,
    kinds: list[str],
    sizes: list[int] | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """`autoprune baselines`: train the one-shot baselines as trials of the study, select again
    (a baseline may join the front) and rewrite the report. Returns the baseline table."""
    load_study(name, storage)
    prep = prepared_from_study(name, storage, device)
    ensure_reference(prep, log)
    table = baselines.run(prep, kinds, sizes, log)
    finalize(prep, study_rule(prep.study), log)
    report_dir = study_dir(name) / "report"
    write_report(prep.study, report_dir)
    return {"table": table, "objectives": prep.settings["objectives"], "report": report_dir}
