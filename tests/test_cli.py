"""The command line as a user meets it: exit codes, one-line errors, JSON that parses."""

import contextlib
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoprune.cli import main
from autoprune.export import read_metadata
from autoprune.study import load_study, trained_trials


def run(*args, capsys):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


SEARCH = ["--study", "c1", "--trials", "3", "--device", "cpu", "--seed", "0"]


def search_args(tiny_model_dir, tiny_csv, tiny_space):
    return [
        "search",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(tiny_csv),
        "--space",
        str(tiny_space),
        *SEARCH,
    ]


def test_evaluate_json_is_finite(tiny_model_dir, tiny_csv, capsys):
    code, out, _ = run(
        "evaluate",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(tiny_csv),
        "--context-length",
        "64",
        "--horizon",
        "16",
        "--patch-size",
        "16",
        "--max-windows",
        "20",
        "--json",
        capsys=capsys,
    )
    assert code == 0
    result = json.loads(out)
    assert result["metrics"]["windows"] == 20
    for name in ("mase", "crps", "mse", "mae"):
        assert math.isfinite(result["metrics"][name]) and result["metrics"][name] > 0
        assert math.isfinite(result["seasonal_naive"][name])


def test_list_commands(capsys, studies):
    for what in ("models", "datasets", "samplers", "studies"):
        code, out, _ = run("list", what, "--json", capsys=capsys)
        assert code == 0
        rows = json.loads(out)
        assert isinstance(rows, list)
    code, out, _ = run("list", "models", "--json", capsys=capsys)
    aliases = {r["alias"]: r for r in json.loads(out)}
    assert aliases["moirai-tiny"]["availability"] == "shipped"
    assert {"moirai-small", "moirai-base", "moirai-large", "moirai-1.1-small"} <= set(aliases)


def test_list_tables_keep_names_whole_and_say_why_a_family_is_unsupported(capsys):
    code, out, _ = run("list", "models", capsys=capsys)
    assert code == 0
    assert "moirai-1.1-large" in out and "310,970,624" in out  # never broken across lines
    assert "unsupported family sundial:" in out and "trust_remote_code" in out
    code, out, _ = run("list", "datasets", capsys=capsys)
    assert code == 0 and "exchange-rate" in out and "github/zhouhaoyi" in out
    code, out, _ = run("list", "datasets", "--json", capsys=capsys)
    etth1 = next(r for r in json.loads(out) if r["name"] == "etth1")
    assert etth1["source"].startswith("https://") and len(etth1["sha256"]) == 64


def test_search_report_export_and_evaluate_reproduce(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path, capsys
):
    code, out, _ = run(*search_args(tiny_model_dir, tiny_csv, tiny_space), capsys=capsys)
    assert code == 0 and "Pareto front" in out and "report:" in out
    # the last line splits the run's time: the search, then the selection and the report
    split = re.search(
        r"\((\d+) s: the search (\d+) s, "
        r"then the selection, the test split and the report (\d+) s\)",
        " ".join(out.split()),
    )
    assert split, out
    total, searching, finishing = map(int, split.groups())
    assert abs(searching + finishing - total) <= 1 and finishing <= total
    code, out, _ = run("list", "studies", "--json", capsys=capsys)
    rows = json.loads(out)
    assert rows[0]["name"] == "c1" and rows[0]["trials"] == 3 and rows[0]["front"] >= 1
    assert rows[0]["stopped"] == 0 and rows[0]["failed"] == 0
    # the same hypervolume and compute as the study's report
    summary = json.loads((studies / "c1" / "report" / "summary.json").read_text())
    assert rows[0]["hypervolume"] == round(summary["hypervolume"]["final"], 4) > 0
    assert rows[0]["compute_s"] == round(summary["compute"]["total_s"]) > 0

    code, out, _ = run("report", "c1", "--out", str(tmp_path / "rep"), capsys=capsys)
    assert code == 0 and (tmp_path / "rep" / "report.html").is_file()

    export_dir = tmp_path / "exported"
    code, out, _ = run("export", "c1", "--out", str(export_dir), capsys=capsys)
    assert code == 0
    metadata = read_metadata(export_dir)
    study = load_study("c1")
    assert metadata["keep"] == study.user_attrs["selection"]["keep"]

    # the family's own library loads it with the pruned depth
    from autoprune.models.moirai import _uni2ts

    with contextlib.redirect_stdout(io.StringIO()):  # uni2ts prints while loading
        module = _uni2ts()[0].from_pretrained(str(export_dir), strict=True)
    assert module.num_layers == len(metadata["keep"])

    # `autoprune evaluate --model DIR` reproduces the stored test metrics
    code, out, _ = run("evaluate", "--model", str(export_dir), "--json", capsys=capsys)
    assert code == 0
    result = json.loads(out)
    for name in ("mase", "crps", "mse", "mae"):
        assert result["metrics"][name] == pytest.approx(metadata["test"][name], rel=1e-6)

    # export of a given trial, re-trained deterministically
    number = trained_trials(study)[0].number
    code, out, _ = run(
        "export", "c1", "--trial", str(number), "--out", str(tmp_path / "t"), capsys=capsys
    )
    assert code == 0 and read_metadata(tmp_path / "t")["trial"] == number


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("autoprune")
    result = subprocess.run(
        [str(exe), "list", "datasets"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "etth1" in result.stdout


def test_the_front_table_fits_80_columns_with_every_number_whole():
    """On an 80-column terminal no number of the front is cut ('1,114,5…'); a long keep set
    wraps instead."""
    from rich.console import Console

    from autoprune.cli import _front_table

    def point(trial: int, keep: list[int], params: int) -> dict:
        values = {"mase": 1.3214, "params": params, "latency_ms": 24.813}
        return {"trial": trial, "keep": keep, **values, "test": {"mase": 1.1507}}

    front = [point(5, [1], 520_452), point(7, [1, 2, 9, 10, 11], 1_312_532)]
    front.append(point(9, list(range(12)), 2_698_672))
    for f in front:
        f.update(latency_measured_ms=23.7, latency_off_profile=False)
    summary = {"study": "s", "objectives": ["mase", "params", "latency_ms"], "front": front}
    summary.update(selection={"trial": 7}, trials={"trained": 30})
    console = Console(width=80, record=True)
    console.print(_front_table(summary))
    shown = console.export_text()
    assert "…" not in shown and max(map(len, shown.splitlines())) <= 80
    for number in ("520,452", "1,312,532", "2,698,672", "1.321", "24.81", "1.151", "23.7"):
        assert number in shown
