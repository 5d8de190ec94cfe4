"""`autoprune compare`: studies of one model and dataset on one yardstick, by compute."""

from __future__ import annotations

import json

import pytest

from autoprune.cli import main
from autoprune.compare import compare
from autoprune.errors import AutoPruneError
from autoprune.report import collect
from autoprune.search.run import search
from autoprune.study import load_study
from tests.conftest import options, quiet


def test_compare_rescores_on_one_profile_and_follows_each_study_over_compute(
    tiny_model_dir, tiny_csv, tiny_space, studies, capsys
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, study="a", trials=3), log=quiet)
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, study="b", trials=4, sampler="random"),
        log=quiet,
    )
    a, b = load_study("a"), load_study("b")
    # judged by its own profile and full model, a study's numbers are its report's
    for name, study, other in (("a", a, b), ("b", b, a)):
        row = compare({name: study, "other": other})["studies"][name]
        own = collect(study)["hypervolume"]
        assert row["hypervolume"] == pytest.approx(own["final"])
        assert row["curve"] == pytest.approx(own["curve"])
        assert (
            row["curve_compute_s"] == own["compute_s"] and row["compute_s"] == own["compute_s"][-1]
        )
    result = compare({"a": a, "b": b})
    rows = result["studies"]
    assert rows["b"]["sampler"] == "random" and rows["b"]["trained"] == 4
    assert max(r["ratio_to_best"] for r in rows.values()) == pytest.approx(1.0)
    # the compute to 95% of the best: the best study reaches it by its end, others may not
    best = max(rows, key=lambda name: rows[name]["hypervolume"])
    assert 0 < rows[best]["compute_s_to_95%_of_best"] <= rows[best]["compute_s"]
    for row in rows.values():
        reach = row["compute_s_to_95%_of_best"]
        assert (reach is None) == (row["ratio_to_best"] < 0.95)

    assert main(["compare", "a,b", "--profile-from", "b"]) == 0
    printed = capsys.readouterr().out
    assert "on b's latency profile" in printed and "compare.png" in printed
    written = json.loads((studies / "compare" / "compare.json").read_text())
    assert written["profile_from"] == "b" and list(written["studies"]) == ["a", "b"]
    assert (studies / "compare" / "compare.png").stat().st_size > 0


def test_compare_refuses_what_does_not_compare(tiny_model_dir, tiny_csv, tiny_space, studies):
    search(options(tiny_model_dir, tiny_csv, tiny_space, study="a", trials=2), log=quiet)
    a = load_study("a")
    with pytest.raises(AutoPruneError, match="not one of the studies"):
        compare({"a": a}, profile_from="z")
    search(
        options(tiny_model_dir, tiny_csv, tiny_space, study="c", trials=2, objective="crps"),
        log=quiet,
    )
    with pytest.raises(AutoPruneError, match="only studies of one model, dataset and objectives"):
        compare({"a": a, "c": load_study("c")})
    assert main(["compare", "a,nope"]) == 2  # an unknown study: one line, exit 2
