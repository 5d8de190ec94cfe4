"""Validation-to-test evidence for the default selection rule (README, "Front and selection").

For finished studies whose front has test metrics (`autoprune report NAME --test-front`), what
each candidate rule selects and how that keep set does on validation and test, next to the full
model re-aligned and zero-shot. Reads the studies only.

    python scripts/rule_evidence.py rule-etth1 rule-etth2 ... [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autoprune.pareto import rule_met
from autoprune.search.front import choose
from autoprune.study import (
    FRONT_TEST_ATTR,
    REFERENCE_ATTR,
    full_values,
    keep_key,
    load_study,
    settings_of,
)

RULES = (
    "knee",
    "within:mase<=0%",
    "within:mase<=1%",
    "within:mase<=2%",
    "within:mase<=5%",
    "within:mase<=10%",
)


def evidence(name: str) -> list[dict]:
    study = load_study(name)
    metric = settings_of(study)["objectives"][0]
    reference = study.user_attrs[REFERENCE_ATTR]
    front_test = study.user_attrs.get(FRONT_TEST_ATTR, {})
    objectives = settings_of(study)["objectives"]
    layers = len(reference["realigned"]["keep"])
    rows = []
    for text in RULES:
        trial, rule = choose(study, text)
        keep = trial.user_attrs["keep"]
        test = front_test.get(keep_key(keep))
        if test is None:
            raise SystemExit(f"{name}: run `autoprune report {name} --test-front` first")
        rows.append(
            {
                "study": name,
                "rule": text,
                "met": rule_met(rule, objectives, trial.values, full_values(reference, objectives)),
                "keep": keep,
                "layers": layers,
                "params": trial.user_attrs["params"] / reference["realigned"]["params"],
                "val": trial.user_attrs[metric],
                "test": test[metric],
                "full_val": reference["realigned"][metric],
                "full_test": reference["realigned"]["test"][metric],
                "zero_shot_val": reference["zero_shot"][metric],
                "zero_shot_test": reference["zero_shot"]["test"][metric],
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """README's table: one row per rule, one column per study; each cell kept layers, validation
    / test accuracy, and test against the full model zero-shot († a within rule no front point
    met: the most accurate front point)."""
    studies = list(dict.fromkeys(r["study"] for r in rows))
    cell = {(r["study"], r["rule"]): r for r in rows}
    first = {s: cell[s, RULES[0]] for s in studies}
    lines = [
        "| rule | " + " | ".join(studies) + " | as good as zero-shot on test | mean parameters |",
        "|---|" + "---:|" * (len(studies) + 2),
    ]
    for label, kind in (("full model zero-shot", "zero_shot_"), ("full model re-aligned", "full_")):
        values = [
            f"{first[s]['layers']}: {first[s][kind + 'val']:.3f} / {first[s][kind + 'test']:.3f}"
            for s in studies
        ]
        lines.append(f"| {label} | " + " | ".join(values) + " | | 100% |")
    for rule in RULES:
        picked = [cell[s, rule] for s in studies]
        values = [
            f"{len(r['keep'])}{'' if r['met'] else '†'}: {r['val']:.3f} / {r['test']:.3f} "
            f"({r['test'] / r['zero_shot_test'] - 1:+.1%})"
            for r in picked
        ]
        good = sum(r["test"] <= r["zero_shot_test"] for r in picked)
        params = sum(r["params"] for r in picked) / len(picked)
        lines.append(
            f"| `{rule}` | " + " | ".join(values) + f" | {good} of {len(picked)} | {params:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [row for name in args.studies for row in evidence(name)]
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
