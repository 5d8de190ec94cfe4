"""Bad input across the whole CLI: one line saying what was wrong and what to do, exit 2, no
traceback, and every existing study exactly as it was (same trials, same values, same files).

One real study ("kept") is built once; every row then runs against the same studies folder."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from autoprune.cli import main
from autoprune.study import load_study
from tests.conftest import TINY_SPACE, save_tiny_model


def _snapshot(root: Path) -> dict:
    """What a user could lose: each trial's state, values and attrs, and every file's bytes."""
    study = load_study("kept")
    trials = [(t.number, t.state.name, t.values, t.user_attrs) for t in study.get_trials()]
    files = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return {"trials": trials, "files": files}


def _contents(folder: Path) -> dict:
    """Every file's bytes and every folder (None) under `folder`."""
    return {p: p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir, tiny_csv):
    """A studies folder with one finished study, and a folder of bad things to feed the CLI."""
    root = tmp_path_factory.mktemp("world")
    space = root / "space.toml"
    space.write_text(TINY_SPACE)
    studies = root / "studies"
    bad = root / "bad"
    bad.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOPRUNE_STUDIES_DIR", str(studies))
        args = ["--model", str(tiny_model_dir), "--dataset", str(tiny_csv), "--space", str(space)]
        code = main(["search", *args, "--study", "kept", "--trials", "3", "--device", "cpu"])
        assert code == 0
    # CSVs a user might bring
    frame = pd.read_csv(tiny_csv)
    (bad / "empty.csv").write_text("")
    (bad / "header-only.csv").write_text("date,OT\n")
    frame.rename(columns={"OT": "load"}).to_csv(bad / "no-target.csv", index=False)
    text = frame.astype({"OT": str})
    text.loc[5, "OT"] = "n/a?"
    text.to_csv(bad / "non-numeric.csv", index=False)
    sparse = frame.copy()
    sparse.loc[sparse.index % 3 != 0, "OT"] = np.nan
    sparse.to_csv(bad / "mostly-missing.csv", index=False)
    frame.head(50).to_csv(bad / "short.csv", index=False)
    frame.assign(OT=0.0).to_csv(bad / "all-zero.csv", index=False)
    frame.assign(OT=7.5).to_csv(bad / "constant.csv", index=False)
    for name, value in (("inf", "inf"), ("huge", "1e308"), ("1e200", "1e200")):
        text.loc[5, "OT"] = value
        text.to_csv(bad / f"{name}.csv", index=False)
    # model directories
    (bad / "no-weights").mkdir()
    shutil.copy(tiny_model_dir / "config.json", bad / "no-weights")
    shutil.copytree(tiny_model_dir, bad / "mismatched")
    config = json.loads((bad / "mismatched" / "config.json").read_text())
    (bad / "mismatched" / "config.json").write_text(json.dumps({**config, "d_model": 96}))
    (bad / "pickle").mkdir()
    shutil.copy(tiny_model_dir / "config.json", bad / "pickle")
    torch.save(
        load_file(tiny_model_dir / "model.safetensors"), bad / "pickle" / "pytorch_model.bin"
    )
    weights = (tiny_model_dir / "model.safetensors").read_bytes()
    for name, blob in (
        ("truncated", weights[:-100]),
        ("garbage", b"<html>404</html>"),
        ("empty", b""),
    ):
        shutil.copytree(tiny_model_dir, bad / name)
        (bad / name / "model.safetensors").write_bytes(blob)
    shutil.copytree(tiny_model_dir, bad / "weights-folder")
    (bad / "weights-folder" / "model.safetensors").unlink()
    (bad / "weights-folder" / "model.safetensors").mkdir()
    shutil.copytree(tiny_model_dir, bad / "weights-link")
    (bad / "weights-link" / "model.safetensors").replace(bad / "elsewhere.safetensors")
    (bad / "weights-link" / "model.safetensors").symlink_to(bad / "elsewhere.safetensors")
    # search-space files
    (bad / "latin1.toml").write_bytes(("# r\u00e9glage\n" + TINY_SPACE).encode("latin-1"))
    (bad / "other-model.toml").write_text('model = "moirai-base"\nnum_layers = 12\n')
    (bad / "malformed.toml").write_text("num_layers = [\n")
    (bad / "out-of-range.toml").write_text(
        TINY_SPACE.replace("max_kept = 3", "max_kept = 3\nalways_keep = [7]")
    )
    (bad / "impossible.toml").write_text(TINY_SPACE.replace("min_kept = 1", "min_kept = 5"))
    (bad / "min-over-max.toml").write_text(
        TINY_SPACE.replace("min_kept = 1", "min_kept = 3").replace("max_kept = 3", "max_kept = 2")
    )
    (bad / "unknown-objective.toml").write_text(
        TINY_SPACE.replace("max_kept = 3", 'max_kept = 3\nobjectives = ["mase", "flops"]')
    )
    (bad / "code.toml").write_text(
        TINY_SPACE.replace(
            'model = "tiny"', 'model = "tiny"\nimport = "os; os.system(\'touch pwned\')"'
        )
    )
    # things that are in the way of an output
    (bad / "a-file").write_text("mine\n")
    (bad / "my-folder").mkdir()
    (bad / "my-folder" / "notes.txt").write_text("mine\n")
    # storages that are not Optuna's
    with sqlite3.connect(bad / "mine.db") as db:
        db.execute("CREATE TABLE notes (text)")
    (studies / "zero").mkdir()
    (studies / "zero" / "study.db").write_bytes(b"")
    other_model = save_tiny_model(root / "other-model", seed=1)  # other weights
    other_csv = root / "other.csv"
    other_csv.write_text(tiny_csv.read_text())
    return {
        "studies": studies,
        "bad": bad,
        "model": tiny_model_dir,
        "csv": tiny_csv,
        "space": space,
        "other_model": other_model,
        "other_csv": other_csv,
        "before": None,
    }


# (id, argv with {placeholders}, what the one line must say)
SEARCH = "search --model {model} --dataset {csv} --space {space} --device cpu --trials 4"
ROWS = [
    ("unknown-model", "search --model moirai-huge --study n", "unknown model 'moirai-huge'"),
    ("unknown-dataset", "search --dataset etth9 --study n", "unknown dataset 'etth9'"),
    ("unknown-study-report", "report nope", "unknown study 'nope'"),
    ("unknown-study-export", "export nope --out {bad}/x", "unknown study 'nope'"),
    ("unknown-sampler", SEARCH + " --study kept --sampler magic", "unknown sampler 'magic'"),
    ("unknown-objective", SEARCH + " --study kept --objective flops", "'flops' is not an accuracy"),
    ("unknown-rule-search", SEARCH + " --study kept --rule best", "unknown selection rule 'best'"),
    ("unknown-rule-report", "report kept --rule best", "unknown selection rule 'best'"),
    ("budget-not-a-number", "report kept --rule budget:params<=lots", "unknown selection rule"),
    ("budget-not-an-objective", "report kept --rule budget:flops<=3", "names 'flops'"),
    ("study-dotdot", SEARCH + " --study ..", "study name '..' is not allowed"),
    ("study-parent-path", SEARCH + " --study ../kept", "study name '../kept' is not allowed"),
    ("study-slash", "report a/kept", "study name 'a/kept' is not allowed"),
    ("study-absolute", SEARCH + " --study /etc", "study name '/etc' is not allowed"),
    ("storage-not-a-url", SEARCH + " --study kept --storage studies.db", "is not a storage URL"),
    ("storage-unknown-dialect", SEARCH + " --study n --storage foo://x", "storage 'foo://x'"),
    (
        "storage-unreachable",
        SEARCH + " --study n --storage postgresql://me:secret@127.0.0.1:9/db",
        "storage 'postgresql://me:***@127.0.0.1:9/db'",
    ),
    (
        "storage-bad-port",
        SEARCH + " --study n --storage postgresql://me:secret@127.0.0.1:abc/db",
        "storage 'postgresql://me:***@127.0.0.1:abc/db'",
    ),
    (
        "storage-no-slashes",
        SEARCH + " --study n --storage postgresql:me:secret@host/db",
        "--storage 'postgresql:me:***@host/db' is not a storage URL",
    ),
    (
        "storage-foreign-sqlite-report",
        "report kept --storage sqlite:///{bad}/mine.db",
        "mine.db' holds no Optuna tables",
    ),
    (
        "storage-foreign-sqlite-search",
        SEARCH + " --study n --storage sqlite:///{bad}/mine.db",
        "mine.db' holds no Optuna tables",
    ),
    (
        "storage-mistyped-report",
        "report kept --storage sqlite:///{bad}/nowhere/study.db",
        "nowhere/study.db' does not exist",
    ),
    (
        "storage-mistyped-export",
        "export kept --out {bad}/x --storage sqlite:///{bad}/nowhere.db",
        "nowhere.db' does not exist",
    ),
    ("storage-zero-bytes-search", SEARCH + " --study zero", "study.db' is empty (0 bytes)"),
    ("storage-zero-bytes-report", "report zero", "study.db' is empty (0 bytes)"),
    ("space-malformed", SEARCH + " --study n --space {bad}/malformed.toml", "not valid TOML"),
    ("space-missing", SEARCH + " --study n --space {bad}/none.toml", "does not exist"),
    (
        "space-out-of-range",
        SEARCH + " --study n --space {bad}/out-of-range.toml",
        "always_keep = 7 must be between 0 and 3",
    ),
    (
        "space-impossible",
        SEARCH + " --study n --space {bad}/impossible.toml",
        "min_kept = 5 must be between 1 and 4",
    ),
    (
        "space-min-over-max",
        SEARCH + " --study n --space {bad}/min-over-max.toml",
        "min_kept = 3 is larger than max_kept = 2",
    ),
    (
        "space-unknown-objective",
        SEARCH + " --study n --space {bad}/unknown-objective.toml",
        "unknown objective 'flops'",
    ),
    ("space-code", SEARCH + " --study n --space {bad}/code.toml", "import = "),
    ("csv-empty", SEARCH + " --study n --dataset {bad}/empty.csv", "empty.csv is empty"),
    ("csv-header-only", SEARCH + " --study n --dataset {bad}/header-only.csv", "no data rows"),
    (
        "csv-no-target",
        SEARCH + " --study n --dataset {bad}/no-target.csv",
        "has no column 'OT'; columns are date, load",
    ),
    (
        "csv-non-numeric",
        SEARCH + " --study n --dataset {bad}/non-numeric.csv",
        "non-numeric values, first 'n/a?'",
    ),
    (
        "csv-mostly-missing",
        SEARCH + " --study n --dataset {bad}/mostly-missing.csv",
        "mostly missing",
    ),
    (
        "csv-too-short",
        SEARCH + " --study n --dataset {bad}/short.csv",
        "fewer than context + horizon",
    ),
    ("csv-not-there", "evaluate --model {model} --dataset {bad}/none.csv", "does not exist"),
    (
        "model-no-weights",
        SEARCH + " --study n --model {bad}/no-weights",
        "has no model.safetensors",
    ),
    (
        "model-mismatched-config",
        SEARCH + " --study n --model {bad}/mismatched",
        "config.json and model.safetensors must come from the same model",
    ),
    (
        "model-pickle",
        "evaluate --model {bad}/pickle --dataset {csv}",
        "pickle weights (pytorch_model.bin), which autoprune never loads",
    ),
    ("split-nan", SEARCH + " --study n --split nan,nan,nan", "not three finite non-negative"),
    ("split-inf", SEARCH + " --study n --split inf,1,1", "--split 'inf,1,1' is not three finite"),
    (
        "csv-all-zero",
        SEARCH + " --study n --dataset {bad}/all-zero.csv",
        "is constant (0 everywhere)",
    ),
    ("csv-constant", "evaluate --model {model} --dataset {bad}/constant.csv", "is constant (7.5"),
    ("csv-inf", SEARCH + " --study n --dataset {bad}/inf.csv", "the value inf at data row 5"),
    ("csv-huge", SEARCH + " --study n --dataset {bad}/huge.csv", "value 1e+308 at data row 5"),
    ("csv-1e200", "evaluate --model {model} --dataset {bad}/1e200.csv", "value 1e+200 at data"),
    ("dataset-directory", "evaluate --model {model} --dataset {bad}", "is a directory; give a CSV"),
    ("target-empty", SEARCH + " --study n --target=", "argument --target: '' is empty"),
    ("horizon-zero", SEARCH + " --study n --horizon 0", "--horizon: '0' must be a whole number"),
    (
        "num-samples-zero",
        "evaluate --model {model} --dataset {csv} --num-samples 0",
        "argument --num-samples: '0' must be a whole number of at least 1",
    ),
    ("seed-negative", SEARCH + " --study n --seed -1", "'-1' must be a whole number from 0 to"),
    ("seed-too-large", SEARCH + " --study n --seed 4294967296", "from 0 to 4294967295"),
    ("device-cuda-abc", SEARCH + " --study n --device cuda:abc", "--device 'cuda:abc' is not one"),
    ("device-cuda-99", SEARCH + " --study n --device cuda:99", "--device cuda:99 "),
    (
        "rule-negative-budget",
        SEARCH + " --study n --rule budget:params<=-5%",
        "the budget -5% must be a positive number",
    ),
    (
        "rule-within-absolute",
        SEARCH + " --study n --rule within:mase<=2",
        "within takes the study's accuracy objective and a percentage",
    ),
    (
        "dataset-repeated",
        SEARCH + " --study n --dataset {csv},{csv}",
        "must name one or more different datasets",
    ),
    (
        "aggregate-one-dataset",
        SEARCH + " --study n --aggregate worst",
        "--aggregate only applies to a study of several datasets",
    ),
    (
        "holdout-own-dataset",
        SEARCH + " --study n --holdout-dataset {csv}",
        "is the study's own dataset",
    ),
    (
        "truth-several-datasets",
        "bench truth --model moirai-tiny-8 --dataset etth1,etth2 --out {bad}/truth",
        "bench truth builds one table per dataset",
    ),
    (
        "space-bench-replay",
        "bench replay --truth studies/bench/truth-moirai-tiny-8-ili.json --space {bad}/x.toml",
        "--space applies to `bench truth` only",
    ),
    ("space-latin1", SEARCH + " --study n --space {bad}/latin1.toml", "not UTF-8 text (byte 0xe9"),
    ("space-directory", SEARCH + " --study n --space {bad}", "is a directory; give a TOML file"),
    (
        "space-other-model",
        "search --model moirai-tiny --dataset {csv} --study n --space {bad}/other-model.toml",
        "model = 'moirai-base' but the search is for 'moirai-tiny'",
    ),
    (
        "model-truncated",
        SEARCH + " --study n --model {bad}/truncated",
        "not a readable safetensors",
    ),
    (
        "model-garbage",
        "evaluate --model {bad}/garbage --dataset {csv}",
        "not a readable safetensors",
    ),
    ("model-empty-weights", SEARCH + " --study n --model {bad}/empty", "header too small"),
    ("model-weights-folder", SEARCH + " --study n --model {bad}/weights-folder", "is not a file"),
    (
        "model-weights-link",
        SEARCH + " --study n --model {bad}/weights-link",
        "elsewhere.safetensors', outside the model directory",
    ),
    ("report-out-under-a-file", "report kept --out {bad}/a-file/report", "a-file' is a file"),
    ("export-out-under-a-file", "export kept --out {bad}/a-file/x", "a-file' is a file"),
    ("trials-zero", SEARCH + " --study kept --trials 0", "--trials 0 must be at least 1"),
    ("trials-negative", SEARCH + " --study kept --trials -2", "--trials -2 must be at least 1"),
    ("compute-zero", SEARCH + " --study kept --compute 0", "--compute 0 must be a positive"),
    ("compute-nan", SEARCH + " --study kept --compute nan", "--compute nan must be a positive"),
    ("screen-unknown", SEARCH + " --study kept --screen maybe", "invalid choice: 'maybe'"),
    ("trials-not-a-number", SEARCH + " --study kept --trials many", "invalid int value: 'many'"),
    ("threads-zero", SEARCH + " --study kept --threads 0", "--threads 0 must be at least 1"),
    ("device-unknown", SEARCH + " --study kept --device tpu", "--device 'tpu' is not one of"),
    ("resume-other-model", "search --study kept --model {other_model}", "created with model"),
    ("resume-other-dataset", "search --study kept --dataset {other_csv}", "created with dataset"),
    ("export-bad-trial", "export kept --trial 999 --out {bad}/x", "has no completed trial 999"),
    ("export-onto-a-file", "export kept --out {bad}/a-file", "is a file"),
    ("export-onto-a-folder", "export kept --out {bad}/my-folder", "refusing to replace it"),
    ("report-onto-a-file", "report kept --out {bad}/a-file", "is a file"),
    (
        "score-unknown-method",
        "score --model {model} --dataset {csv} --method magic",
        "unknown importance method 'magic'",
    ),
]


@pytest.mark.parametrize("argv,message", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_no_study_changes(
    world, argv, message, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(world["studies"]))
    monkeypatch.chdir(tmp_path)  # anything written to the working directory would show up here
    before = _snapshot(world["studies"])
    bad_before = _contents(world["bad"])
    paths = {k: v for k, v in world.items() if isinstance(v, Path)}
    args = [part.format(**paths) for part in argv.split()]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert "secret" not in err
    assert _snapshot(world["studies"]) == before
    assert _contents(world["bad"]) == bad_before, "a bad command created or changed a file"
    assert not list(tmp_path.iterdir()), "a bad command left files behind"
    assert not (world["studies"] / "n").exists(), "a refused study was created anyway"


def test_debug_shows_the_traceback(world, monkeypatch):
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(world["studies"]))
    with pytest.raises(Exception, match="unknown study 'nope'"):
        main(["--debug", "report", "nope"])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_disk_or_read_only_folder_is_one_line_and_keeps_the_old_report(
    world, code, monkeypatch, capsys, tmp_path
):
    """The disk fills up (or the folder turns read-only) half way through writing a report:
    the previous report stays whole, no temporary files are left, one line says what to do."""
    import autoprune.export as export

    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(world["studies"]))
    out = tmp_path / "report"
    assert main(["report", "kept", "--out", str(out)]) == 0
    capsys.readouterr()
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace = export.os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # summary.json went through; trials.csv hits the full disk
            raise OSError(code, errno.errorcode[code].lower().replace("e", "", 1), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(export.os, "replace", failing_replace)
    assert main(["report", "kept", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err and "trials.csv" in err
    monkeypatch.setattr(export.os, "replace", real_replace)
    now = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(now) == set(old), "temporary files left behind"
    json.loads(now["summary.json"])  # whole, old or new
    assert now["trials.csv"] == old["trials.csv"]


def test_list_leaves_an_empty_study_file_as_it_is(world, monkeypatch, capsys):
    """`list` only reads: a zero-byte study.db is listed as unreadable, not made a new study."""
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(world["studies"]))
    assert main(["list", "studies", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["zero"]["model"] == "?" and rows["kept"]["trials"] == 3
    assert (world["studies"] / "zero" / "study.db").stat().st_size == 0


def test_a_copied_study_folder_exports_its_own_checkpoint(world, monkeypatch, tmp_path, capsys):
    """The selection's checkpoint is found relative to the study folder, so a copy (a backup,
    another machine) exports what it holds; a study written with an absolute path still reads."""
    copy = tmp_path / "copy"
    shutil.copytree(world["studies"] / "kept", copy / "kept")
    marker = copy / "kept" / "selected" / "autoprune.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "copied": True}))
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(copy))
    assert main(["export", "kept", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "autoprune.json").read_text())["copied"]
    study = load_study("kept")
    selection = study.user_attrs["selection"]
    study.set_user_attr("selection", {**selection, "checkpoint": str(marker.parent)})
    assert main(["export", "kept", "--out", str(tmp_path / "old")]) == 0
    assert json.loads((tmp_path / "old" / "autoprune.json").read_text())["copied"]
    capsys.readouterr()


def _read_only(connection, _record):
    connection.execute("PRAGMA query_only = ON")


def _full_disk(_connection, _cursor, statement, *_):
    if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
        raise sqlite3.OperationalError("database or disk is full")


@pytest.mark.parametrize(
    "hook,refuse,why",
    [
        ("connect", _read_only, "attempt to write a readonly database"),
        ("before_cursor_execute", _full_disk, "database or disk is full"),
    ],
    ids=["read-only", "full-disk"],
)
def test_a_storage_the_disk_refuses_to_write_is_one_line_naming_it(
    world, hook, refuse, why, monkeypatch, tmp_path, capsys
):
    """Resuming on a read-only folder, or the disk filling up under the SQLite storage: one line
    naming study.db, and the study keeps every finished trial."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    copy = tmp_path / "studies"
    shutil.copytree(world["studies"] / "kept", copy / "kept")
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(copy))
    before = [(t.number, t.values) for t in load_study("kept").get_trials()]
    event.listen(Engine, hook, refuse)
    try:
        code = main(["search", "--study", "kept", "--trials", "4", "--device", "cpu"])
    finally:
        event.remove(Engine, hook, refuse)
    err = capsys.readouterr().err.strip()  # the study's header and progress, then the error
    assert code == 2 and "Traceback" not in err and err.count("error:") == 1, err
    assert err.splitlines()[-1].startswith(
        f"autoprune: error: cannot write {copy}/kept/study.db: {why}"
    )
    assert [(t.number, t.values) for t in load_study("kept").get_trials()] == before


def test_a_damaged_screen_cache_is_rebuilt_on_resume(world, monkeypatch, tmp_path, capsys):
    copy = tmp_path / "studies"
    shutil.copytree(world["studies"] / "kept", copy / "kept")
    cache = copy / "kept" / "screen.json"
    whole = json.loads(cache.read_text())
    cache.write_text(cache.read_text()[:50])
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(copy))
    # one more trial: a resume with none left to train needs no screen, so it screens nothing
    assert main(["search", "--study", "kept", "--trials", "4", "--device", "cpu"]) == 0
    rebuilt = json.loads(cache.read_text())["sets"]
    assert {k: v["mase"] for k, v in rebuilt.items()} == pytest.approx(
        {k: v["mase"] for k, v in whole["sets"].items()}, rel=1e-5
    )
    capsys.readouterr()


def test_leftovers_of_a_killed_run_are_removed_by_the_next(world, monkeypatch, tmp_path, capsys):
    """A kill -9 while a checkpoint or a report file was being written leaves its temporary
    folder or file; the next run removes it, but not one a live process is writing."""
    copy = tmp_path / "studies"
    shutil.copytree(world["studies"] / "kept", copy / "kept")
    study, report = copy / "kept", copy / "kept" / "report"
    (study / ".selected.tmp-k2j4").mkdir()
    (study / ".selected.tmp-k2j4" / "model.safetensors").write_bytes(b"half")
    (study / ".selected.4194304.x1y2.tmp").mkdir()  # no such pid
    (report / ".pareto.png.ab12cd34.tmp").write_bytes(b"half")
    live = report / f".summary.json.{os.getpid()}.zz99.tmp"
    live.write_bytes(b"being written")
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(copy))
    assert main(["search", "--study", "kept", "--trials", "3", "--device", "cpu"]) == 0
    capsys.readouterr()
    leftovers = [p.name for p in (*study.glob(".*"), *report.glob(".*"))]
    assert leftovers == [live.name]


def test_reports_and_exports_follow_the_umask(world, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(world["studies"]))
    old = os.umask(0o027)
    try:
        assert main(["report", "kept", "--out", str(tmp_path / "r")]) == 0
        assert main(["export", "kept", "--out", str(tmp_path / "e")]) == 0
    finally:
        os.umask(old)
    capsys.readouterr()
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "r").iterdir()} == {"0o640"}
    assert oct((tmp_path / "e").stat().st_mode & 0o777) == "0o750"


def test_an_export_the_disk_refuses_is_one_line_naming_it(world, monkeypatch, tmp_path, capsys):
    import autoprune.export as export

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("AUTOPRUNE_STUDIES_DIR", str(world["studies"]))
    monkeypatch.setattr(export.shutil, "copytree", full)
    assert main(["export", "kept", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"autoprune: error: cannot write {tmp_path / 'x'}: No space left")
    assert len(err.splitlines()) == 1 and not list(tmp_path.iterdir())
