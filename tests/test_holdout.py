"""--holdout-dataset: datasets a study never re-aligns or selects on, on which the selection and
the full model (zero-shot and re-aligned) forecast the test split zero-shot at the end."""

import json

import pytest

from autoprune.cli import main
from autoprune.metrics import METRICS
from autoprune.report import collect
from autoprune.search.cached import REALIGNED_FULL
from autoprune.search.run import search
from autoprune.study import load_study, selected_checkpoint
from tests.conftest import options


def evaluated(capsys, model, csv) -> dict:
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--dataset", str(csv), "--eval-split",
                 "test", "--device", "cpu", "--context-length", "64", "--horizon", "16",
                 "--patch-size", "16", "--num-samples", "20", "--json"]) == 0  # fmt: skip
    return json.loads(capsys.readouterr().out)["metrics"]


def test_held_out_datasets_are_forecast_zero_shot_by_the_selection_and_the_full_model(
    tiny_model_dir, tiny_csv, tiny_space, other_csv, studies, capsys
):
    opts = options(tiny_model_dir, tiny_csv, tiny_space, trials=4, threads=1)
    opts.holdout_dataset = str(other_csv)
    said = []
    search(opts, log=said.append)
    # the selection is its saved checkpoint, reloaded, and the full model the re-aligned one the
    # study kept for its test metrics: nothing is re-trained for the held-out datasets
    assert not [m for m in said if m.startswith("re-training the full model")]
    assert not (studies / "s1" / REALIGNED_FULL).exists()  # used, then removed
    study = load_study("s1")
    held = collect(study)["holdout"][str(other_csv)]
    assert held["keep"] == study.user_attrs["selection"]["keep"]
    for label in ("selection", "full_zero_shot", "full_realigned"):
        assert set(held[label]) >= set(METRICS) and held[label]["windows"] > 0
    # the same numbers as `autoprune evaluate` of the shipped model and of the selected checkpoint
    for label, model in (("full_zero_shot", tiny_model_dir),
                         ("selection", selected_checkpoint(study))):  # fmt: skip
        again = evaluated(capsys, model, other_csv)
        for m in METRICS:
            assert again[m] == pytest.approx(held[label][m], rel=1e-6), (label, m)
    # re-alignment on the study's data changes the full model's forecasts elsewhere too
    assert held["full_realigned"]["mase"] != held["full_zero_shot"]["mase"]
    assert main(["report", "s1"]) == 0
    text = (studies / "s1" / "report" / "report.md").read_text()
    assert "## Held-out datasets" in text and "held-out" in text.lower()
    # computed once: resuming with the same selection evaluates nothing again
    messages = []
    search(opts, log=messages.append)
    assert not any("held-out" in m for m in messages)
    # a new selection (simulated: the stored numbers are of another keep set): only it is
    # evaluated again; the full model's numbers do not depend on it
    stale = {str(other_csv): {**held, "keep": [0]}}
    load_study("s1").set_user_attr("holdout", stale)
    assert main(["report", "s1"]) == 0  # the report does not pass them off as the selection's
    text = (studies / "s1" / "report" / "report.md").read_text()
    assert f"ON HELD-OUT {other_csv} THE NUMBERS ARE OF AN EARLIER SELECTION" in text
    assert "| earlier selection [0] |" in text
    messages = []
    search(opts, log=messages.append)
    again = load_study("s1").user_attrs["holdout"][str(other_csv)]
    assert [m for m in messages if "held-out" in m] == [
        f"evaluating the selection on held-out {other_csv} (test split) ..."
    ]
    assert again["full_zero_shot"] == held["full_zero_shot"]  # kept, not computed again
    assert again["full_realigned"] == held["full_realigned"]
    assert all(again["selection"][m] == held["selection"][m] for m in METRICS)
    # without the kept model (removed at the end of the first run) the full model is re-aligned
    # again with the same budget and seed: the same numbers as from the kept one
    stale = {k: v for k, v in held.items() if k != "full_realigned"} | {"keep": [0]}
    load_study("s1").set_user_attr("holdout", {str(other_csv): stale})
    messages = []
    search(opts, log=messages.append)
    assert "re-training the full model for the held-out datasets ..." in messages
    again = load_study("s1").user_attrs["holdout"][str(other_csv)]["full_realigned"]
    assert all(again[m] == held["full_realigned"][m] for m in METRICS)


def test_a_held_out_dataset_that_is_the_studys_own_is_refused_creating_nothing(
    tiny_model_dir, tiny_csv, tiny_space, studies, capsys
):
    command = ["search", "--study", "h", "--model", str(tiny_model_dir), "--dataset",
               str(tiny_csv), "--space", str(tiny_space), "--device", "cpu"]  # fmt: skip
    assert main([*command, "--holdout-dataset", str(tiny_csv)]) == 2
    assert "is the study's own dataset" in capsys.readouterr().err
    assert main([*command, "--holdout-dataset", "no-such-data"]) == 2
    assert "no-such-data" in capsys.readouterr().err
    assert not (studies / "h").exists()
