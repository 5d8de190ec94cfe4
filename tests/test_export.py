"""An exported checkpoint carries a model card: README.md in the Hugging Face layout."""

import hashlib

import yaml

from autoprune.cli import main
from autoprune.export import read_metadata
from autoprune.metrics import METRICS


def _card(directory) -> tuple[dict, str]:
    text = (directory / "README.md").read_text()
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def test_an_export_carries_a_model_card_with_its_keep_set_and_metrics(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path, capsys
):
    argv = ["search", "--study", "c1", "--model", str(tiny_model_dir), "--dataset"]
    argv += [str(tiny_csv), "--space", str(tiny_space), "--trials", "3", "--device", "cpu"]
    assert main([*argv, "--threads", "1", "--rule", "within:mase<=1000%"]) == 0
    out = tmp_path / "pruned"
    assert main(["export", "c1", "--out", str(out)]) == 0
    meta = read_metadata(out)
    front, body = _card(out)
    assert front["library_name"] == "uni2ts"
    assert front["pipeline_tag"] == "time-series-forecasting"
    assert front["datasets"] == [meta["dataset_name"]] and "layer-pruning" in front["tags"]
    assert "base_model" not in front and "license" not in front  # a local folder: not known
    keep = meta["keep"]
    removed = [i for i in range(4) if i not in keep]
    assert f"| keep set | `{tuple(keep)}` |" in body
    assert f"| kept layers | {', '.join(map(str, keep))} ({len(keep)} of 4) |" in body
    assert f"| removed layers | {', '.join(map(str, removed)) or 'none'} |" in body
    assert f"{meta['params']:,}" in body and f"{meta['params_before']:,}" in body
    this = next(line for line in body.splitlines() if line.startswith("| this model |"))
    assert [f"{meta[s][m]:.4f}" for s in ("val", "test") for m in METRICS] == [
        c.strip() for c in this.strip("|").split("|")[1:]
    ]
    full = meta["reference"]["realigned"]
    assert f"| full model, re-aligned | {full['val']['mase']:.4f} |" in body
    assert f"{full['test']['mase']:.4f}" in body
    assert "rule `within:mase<=1000%`" in body and "--rule 'within:mase<=1000%'" in body
    assert "from uni2ts.model.moirai import MoiraiModule" in body
    assert "--study c1 \\\n" in body and f"--model {tiny_model_dir} \\\n" in body
    assert "autoprune export c1 --out" in body
    assert meta["search_compute_s"] > 0 and "--warm-start" not in body
    assert meta["screen"] == "auto" and "--screen" not in body  # the default is left out
    assert f"The search spent {meta['search_compute_s']:,.0f} s of compute" in body
    # which base weights it was cut from, as `sha256sum` checks them
    digest = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert meta["base_weights_sha256"] == digest and f"sha256 `{digest}`)" in body

    # a trial exported by hand says so, and how to export it again
    number = meta["trial"]
    capsys.readouterr()
    assert main(["export", "c1", "--trial", str(number), "--out", str(tmp_path / "t")]) == 0
    _, body = _card(tmp_path / "t")
    assert "chosen by hand" in body and f"--trial {number}" in body


def test_a_shipped_alias_names_its_licence_and_a_hub_id_its_base_model():
    from autoprune.card import _front_matter

    meta = {"family": "moirai", "dataset_name": "etth1"}
    tiny = yaml.safe_load("\n".join(_front_matter({**meta, "license": "apache-2.0"})[1:-1]))
    assert tiny["license"] == "apache-2.0" and "base_model" not in tiny
    hub = {**meta, "hub_id": "Salesforce/moirai-1.1-R-small"}
    assert yaml.safe_load("\n".join(_front_matter(hub)[1:-1]))["base_model"] == hub["hub_id"]
