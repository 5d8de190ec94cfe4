"""The few-layer-dominance table: per study, the fewest kept layers whose validation and test
accuracy are both within x% of the full model's (re-aligned and zero-shot)."""

import json

from autoprune.cli import main
from autoprune.search.run import search
from autoprune.study import FRONT_TEST_ATTR, keep_key, load_study
from tests.conftest import options, quiet


def test_dominance_finds_the_fewest_layers_within_each_level_on_val_and_test(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path, capsys
):
    search(options(tiny_model_dir, tiny_csv, tiny_space, threads=1, trials=6), log=quiet)
    out = tmp_path / "dominance"
    assert main(["dominance", "s1", "--levels", "1,50", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "dominance.json").read_text())
    assert (out / "dominance.png").stat().st_size > 0
    assert "| dataset | study |" in printed and "re-aligned ≤50%" in printed
    (row,) = result["studies"]
    assert len(row["answers"]) == 4  # 2 references x 2 levels
    study = load_study("s1")
    tested = study.user_attrs[FRONT_TEST_ATTR]
    trials = {t.number: t for t in study.get_trials()}
    for answer in row["answers"]:
        kind, bound = answer["reference"], 1 + answer["level"] / 100
        full = row["full"][kind]
        # no candidate with fewer layers meets both bounds; every one that met val was tested
        smaller = [
            trials[p["trial"]]
            for p in row["front"]
            if not answer["found"] or p["kept_fraction"] < answer["kept_fraction"]
        ]
        for trial in smaller:
            if trial.user_attrs["mase"] <= bound * full["val"]:
                assert tested[keep_key(trial.user_attrs["keep"])]["mase"] > bound * full["test"]
        if answer["found"]:
            assert answer["val_ratio"] <= bound and answer["test_ratio"] <= bound
            keep = trials[answer["trial"]].user_attrs["keep"]
            assert tested[keep_key(keep)]["mase"] == answer["test_ratio"] * full["test"]
    # a looser level never needs more layers than a tighter one
    for kind in ("realigned", "zero_shot"):
        tight, loose = (a for a in row["answers"] if a["reference"] == kind)
        if tight["found"]:
            assert loose["found"] and loose["kept_layers"] <= tight["kept_layers"]
    # a second run re-trains nothing: the test metrics are stored in the study
    capsys.readouterr()
    assert main(["dominance", "s1", "--levels", "1,50", "--out", str(out), "--device", "cpu"]) == 0
    assert "re-training" not in capsys.readouterr().err


def test_dominance_refuses_bad_levels_and_unknown_studies_creating_nothing(studies, capsys):
    assert main(["dominance", "s1", "--levels", "1,abc"]) == 2
    assert "--levels '1,abc'" in capsys.readouterr().err
    assert main(["dominance", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not studies.exists() or not any(studies.iterdir())
