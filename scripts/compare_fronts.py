"""Hypervolume of several studies' fronts on one yardstick (docs/default-run.md).

A study's `latency_ms` is its own latency profile's prediction, so two runs of the same search
on a machine under different load put the same keep set at different latencies, and their
hypervolumes are not comparable as stored. Here every study's trained keep sets are re-scored
with ONE profile (`--profile-from`, default the first study's) and ONE full-model reference
(that study's re-aligned validation accuracy and parameter count): validation accuracy and
parameters as stored, latency predicted from the kept-layer count. Same reference point as the
studies (`autoprune.pareto.hv_reference`), same validation protocol (the stored values).

    AUTOPRUNE_STUDIES_DIR=... python scripts/compare_fronts.py NEW OLD [--profile-from NEW]

Prints JSON: per study, trained keep sets, front size and hypervolume, and each study's ratio
to the last one named.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from autoprune.objective import predict_latency
from autoprune.pareto import hv_reference, hypervolume, non_dominated, normalise
from autoprune.study import (
    PROFILE_ATTR,
    REFERENCE_ATTR,
    load_study,
    quiet_optuna,
    settings_of,
    trained_trials,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+")
    parser.add_argument("--profile-from", help="study whose latency profile and reference rule")
    parser.add_argument("--storage")
    args = parser.parse_args()
    quiet_optuna()
    studies = {name: load_study(name, args.storage) for name in args.studies}
    judge = studies[args.profile_from or args.studies[0]]
    profile = judge.user_attrs[PROFILE_ATTR]
    objectives = settings_of(judge)["objectives"]
    full_record = judge.user_attrs[REFERENCE_ATTR]["realigned"]
    layers = len(full_record["keep"])
    full = [
        predict_latency(profile, layers) if o == "latency_ms" else full_record[o]
        for o in objectives
    ]
    result = {"profile_from": args.profile_from or args.studies[0], "studies": {}}
    for name, study in studies.items():
        if settings_of(study)["objectives"] != objectives:
            raise SystemExit(f"{name} has other objectives than {result['profile_from']}")
        points = np.array(
            [
                [
                    predict_latency(profile, len(t.user_attrs["keep"]))
                    if o == "latency_ms"
                    else t.user_attrs[o]
                    for o in objectives
                ]
                for t in trained_trials(study)
            ]
        )
        normalised = normalise(points, full)
        mask = non_dominated(normalised)
        result["studies"][name] = {
            "trained": len(points),
            "front": int(mask.sum()),
            "hypervolume": hypervolume(normalised[mask], hv_reference(objectives)),
        }
    last = result["studies"][args.studies[-1]]["hypervolume"]
    for entry in result["studies"].values():
        entry["ratio_to_last"] = entry["hypervolume"] / last if last else None
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
