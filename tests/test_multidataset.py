"""One study over several datasets: re-alignment on a mixture of their train splits, accuracy as
the aggregate of each dataset's ratio to the re-aligned full model, per-dataset values stored,
one checkpoint exported."""

import json
import math

import numpy as np
import pytest

import autoprune.objective as objective_module
from autoprune.cli import main
from autoprune.data import load_series
from autoprune.export import read_metadata
from autoprune.metrics import METRICS
from autoprune.search.options import prepare
from autoprune.search.run import search
from autoprune.study import load_study, selected_checkpoint, trained_trials
from tests.conftest import options, quiet


def geomean(values) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def test_a_study_of_two_datasets_aggregates_ratios_to_the_realigned_full_model(
    tiny_model_dir, tiny_csv, other_csv, tiny_space, studies, tmp_path, capsys
):
    both = f"{tiny_csv},{other_csv}"
    search(options(tiny_model_dir, both, tiny_space, trials=4, threads=1), log=quiet)
    study = load_study("s1")
    assert study.user_attrs["autoprune"]["aggregate"] == "geomean"
    reference = study.user_attrs["reference"]
    names = ["toy", "other"]
    full = reference["realigned"]
    assert sorted(full["datasets"]) == sorted(names)
    assert all(full[m] == pytest.approx(1.0) for m in METRICS)  # the reference scores 1
    zero = reference["zero_shot"]
    for m in METRICS:
        ratios = [zero["datasets"][n][m] / full["datasets"][n][m] for n in names]
        assert zero[m] == pytest.approx(geomean(ratios))
    trials = trained_trials(study)
    assert len(trials) == 4
    for trial in trials:
        per = trial.user_attrs["datasets"]
        ratios = [per[n]["mase"] / full["datasets"][n]["mase"] for n in names]
        assert trial.values[0] == pytest.approx(geomean(ratios))
        assert trial.user_attrs["windows"] == sum(per[n]["windows"] for n in names)
    # the selection's test metrics, per dataset and aggregated against the full model's test
    selection = study.user_attrs["selection"]
    test, full_test = selection["test"], full["test"]
    for m in METRICS:
        ratios = [test["datasets"][n][m] / full_test["datasets"][n][m] for n in names]
        assert test[m] == pytest.approx(geomean(ratios))
    # one checkpoint; `evaluate` of it on one dataset reproduces that dataset's test metrics
    meta = read_metadata(selected_checkpoint(study))
    assert meta["datasets"] == names and meta["aggregate"] == "geomean"
    card = (selected_checkpoint(study) / "README.md").read_text()
    assert "- toy\n- other\n" in card and "--aggregate geomean" in card
    assert "Each dataset's own test mase" in card
    checkpoint = str(selected_checkpoint(study))
    assert main(["evaluate", "--model", checkpoint, "--device", "cpu"]) == 2
    assert "several datasets" in capsys.readouterr().err
    assert main(["evaluate", "--model", checkpoint, "--dataset", str(other_csv), "--eval-split",
                 "test", "--device", "cpu", "--json"]) == 0  # fmt: skip
    again = json.loads(capsys.readouterr().out)["metrics"]
    for m in METRICS:
        assert again[m] == pytest.approx(test["datasets"]["other"][m], rel=1e-6)
    # the report shows each dataset
    assert main(["report", "s1"]) == 0
    markdown = (studies / "s1" / "report" / "report.md").read_text()
    assert "## Per dataset" in markdown and "other" in markdown
    assert "Accuracy metrics are the geomean over 2 datasets" in markdown
    # resuming on the command line prints each dataset's test metrics
    capsys.readouterr()
    assert main(["search", "--study", "s1", "--device", "cpu", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "  toy: selected" in printed and "  other: selected" in printed
    assert "(geomean of each dataset's ratio to the re-aligned full model)" in printed
    # resuming with another aggregate is refused; so is --aggregate for one dataset
    opts = options(tiny_model_dir, both, tiny_space, trials=5, aggregate="worst")
    with pytest.raises(Exception, match="aggregate"):
        prepare(opts)
    command = ["search", "--study", "one", "--model", str(tiny_model_dir), "--dataset",
               str(tiny_csv), "--space", str(tiny_space), "--aggregate", "worst"]  # fmt: skip
    assert main(command) == 2
    assert "several datasets" in capsys.readouterr().err
    assert not (studies / "one").exists()


def test_each_realignment_batch_mixes_the_datasets_in_equal_shares(
    tiny_model_dir, tiny_csv, other_csv, tiny_space, studies, monkeypatch
):
    prep = prepare(options(tiny_model_dir, f"{tiny_csv},{other_csv}", tiny_space))
    batches_seen = []

    def capture(adapter, model, batches, steps, lr, seed, **kwargs):
        batches_seen.append(batches(np.random.default_rng(seed)))
        return [0.0]

    monkeypatch.setattr(objective_module, "fit", capture)
    objective_module.realign(prep.ctx, prep.ctx.adapter.model)
    past, future, _ = batches_seen[0]
    size, context = prep.ctx.space.realign.batch_size, prep.ctx.setting.context_length
    assert len(past) == len(future) == size
    toy, other = load_series(str(tiny_csv)), load_series(str(other_csv))

    def comes_from(series, row) -> bool:
        values = series.values.astype(np.float32)
        return any(np.array_equal(values[s : s + context], row) for s in range(len(values)))

    assert all(comes_from(toy, row) for row in past[: size // 2])
    assert all(comes_from(other, row) for row in past[size // 2 :])


def test_worst_aggregate_takes_the_largest_ratio():
    ctx = object.__new__(objective_module.TrialContext)
    ctx.aggregate = "worst"
    assert ctx.combine([0.9, 1.2, 1.05]) == 1.2
    ctx.aggregate = "geomean"
    assert ctx.combine([0.5, 2.0]) == pytest.approx(1.0)


def test_csv_options_can_differ_per_dataset(
    tiny_model_dir, tiny_csv, other_csv, tiny_space, studies, tmp_path, capsys
):
    priced = tmp_path / "priced.csv"
    priced.write_text(other_csv.read_text().replace("date,OT", "date,price", 1))
    both = f"{tiny_csv},{priced}"
    prep = prepare(
        options(tiny_model_dir, both, tiny_space, target="OT;price", split=";0.6,0.2,0.2")
    )
    toy, other = prep.ctx.datasets
    assert np.allclose(other.values, load_series(str(other_csv), split="0.6,0.2,0.2").values)
    assert other.borders == load_series(str(other_csv), split="0.6,0.2,0.2").borders
    assert toy.borders == load_series(str(tiny_csv)).borders  # an empty part keeps the default
    command = ["search", "--study", "x", "--model", str(tiny_model_dir), "--dataset", both,
               "--space", str(tiny_space), "--target", "OT;price;more"]  # fmt: skip
    assert main(command) == 2
    assert "has 3 values for 2 datasets" in capsys.readouterr().err
    assert not (studies / "x").exists()
