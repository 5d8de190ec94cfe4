"""The model card an exported checkpoint carries: `README.md` in the Hugging Face layout (YAML
front matter, then the body), written from the checkpoint's own `autoprune.json`, so a folder
pushed to the hub as is says what it is, how it was made, how well it does next to the full
model, and how to load it with the family's own library."""

from __future__ import annotations

import shlex

from autoprune.metrics import METRICS, SCALES
from autoprune.models import FAMILIES

CARD = "README.md"
HERE = "path/to/this/folder"


def _distilled(realign: dict) -> str:
    """How the card says the re-alignment targets were made, for a distilled one."""
    if realign.get("mode", "data") != "distill":
        return ""
    share = realign["distill_weight"]
    return (
        f", distilled from the full model: {share:.0%} of the loss on futures sampled from the "
        f"unpruned model's forecast, {1 - share:.0%} on the real futures"
    )


def _front_matter(meta: dict) -> list[str]:
    """Only what is known: the hub validates `base_model` and `license` against real ids."""
    family = FAMILIES[meta["family"]]
    lines = ["---"]
    if meta.get("hub_id"):
        lines.append(f"base_model: {meta['hub_id']}")
    lines.append(f"library_name: {family.library.split('.')[0]}")
    if meta.get("license"):
        lines.append(f"license: {meta['license']}")
    datasets = meta.get("datasets") or [meta["dataset_name"]]
    lines += ["pipeline_tag: time-series-forecasting", "datasets:", *(f"- {d}" for d in datasets)]
    tags = ("time-series-forecasting", "autoprune", "layer-pruning", meta["family"])
    lines += ["tags:", *(f"- {tag}" for tag in tags), "---"]
    return lines


def _metrics_table(meta: dict) -> list[str]:
    rows = [("this model", meta["val"], meta["test"])]
    for kind, label in (
        ("realigned", "full model, re-aligned"),
        ("zero_shot", "full model, zero-shot"),
    ):
        full = meta.get("reference", {}).get(kind)
        if full:
            rows.append((label, full["val"], full.get("test") or {}))
    lines = [
        "| model | " + " | ".join(f"val {m}" for m in METRICS) + " | "
        + " | ".join(f"test {m}" for m in METRICS) + " |",
        "|---|" + "---:|" * (2 * len(METRICS)),
    ]  # fmt: skip
    for label, val, test in rows:
        cells = [f"{split[m]:.4f}" if m in split else "-" for split in (val, test) for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _per_dataset(meta: dict) -> list[str]:
    """A multi-dataset selection: what the table above aggregates, and each dataset's own."""
    if not meta.get("aggregate"):
        return []
    metric = meta["objectives"][0]
    reference = meta.get("reference", {})
    lines = [
        f"Selected on {len(meta['datasets'])} datasets: the metrics above are the "
        f"{meta['aggregate']} of each dataset's ratio to the re-aligned full model's (1 = as "
        f"good as it). Each dataset's own test {metric}:",
        "",
        "| dataset | this model | full model, re-aligned | full model, zero-shot |",
        "|---|---:|---:|---:|",
    ]
    for name in meta["datasets"]:
        cells = [meta["test"]["datasets"][name][metric]] + [
            reference[kind]["test"]["datasets"][name][metric] for kind in ("realigned", "zero_shot")
        ]
        lines.append(f"| {name} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    return [*lines, ""]


def _command(meta: dict) -> str:
    """The `autoprune search` that made the study, every setting spelled out."""
    options = meta["dataset_options"]
    setting = meta["setting"]
    parts = [
        "autoprune search",
        f"--study {meta['study']}",
        f"--model {meta['base_model']}",
        f"--dataset {meta['dataset']}",
        *([f"--aggregate {meta['aggregate']}"] if meta.get("aggregate") else []),
        *(f"--{key} {shlex.quote(value)}" for key, value in options.items() if value),
        *([f"--space {meta['space_file']}"] if meta.get("space_file") else []),
        f"--objective {meta['objectives'][0]}",
        f"--context-length {setting['context_length']}",
        f"--horizon {setting['horizon']}",
        f"--patch-size {setting['patch_size']}",
        f"--seed {meta['seed']}",
        f"--sampler {meta['sampler']}",
        f"--fidelity {meta['fidelity']}",
        *([f"--warm-start {meta['warm_start']}"] if meta.get("warm_start") else []),
        *([f"--screen {meta['screen']}"] if meta.get("screen", "auto") != "auto" else []),
        f"--trials {meta['trials']}",
        *([f"--rule '{meta['rule']}'"] if meta.get("rule") else []),
    ]
    return " \\\n    ".join(parts)


def model_card(meta: dict) -> str:
    keep, layers = meta["keep"], meta["num_layers_before"]
    removed = [i for i in range(layers) if i not in keep]
    family = FAMILIES[meta["family"]]
    module, cls = family.loader.split(":")
    splits = ", ".join(f"{name} rows {a}-{b}" for name, (a, b) in meta["splits"].items())
    realign, setting = meta["realign"], meta["setting"]
    known = [meta["hub_id"]] if meta.get("hub_id") else []
    if meta.get("base_weights_sha256"):  # which weights, as `sha256sum model.safetensors` checks
        known.append(f"`model.safetensors` sha256 `{meta['base_weights_sha256']}`")
    base = meta["base_model"] + (f" ({'; '.join(known)})" if known else "")
    chosen = (
        f"selected by the rule `{meta['rule']}` from the Pareto front of validation "
        f"{meta['objectives'][0]} against {', '.join(meta['objectives'][1:])}"
        if meta.get("rule")
        else "chosen by hand from the study's trials (`autoprune export --trial`)"
    )
    if meta.get("rule_met") is False:
        chosen += " (no front point met it, so the most accurate one was selected)"
    export = f"autoprune export {meta['study']} --out {HERE}"
    if not meta.get("rule"):
        export += f" --trial {meta['trial']}"
    lines = [
        *_front_matter(meta),
        "",
        f"# {meta['base_model_name']}, {len(keep)} of {layers} layers, re-aligned on "
        f"{meta['dataset_name']}",
        "",
        f"A layer-pruned {meta['family']} model made by autoprune: the transformer layers not "
        f"listed below were removed from {base}, and what is left was briefly re-aligned "
        f"(fine-tuned) on the train split of {meta['dataset_name']}. It was trial "
        f"{meta['trial']} of the study `{meta['study']}`, {chosen}.",
        "",
        "## Keep set",
        "",
        "| | |",
        "|---|---|",
        f"| keep set | `{tuple(keep)}` |",
        f"| kept layers | {', '.join(map(str, keep))} ({len(keep)} of {layers}) |",
        f"| removed layers | {', '.join(map(str, removed)) or 'none'} |",
        f"| parameters | {meta['params']:,} ({meta['params'] / meta['params_before']:.0%} of "
        f"{meta['params_before']:,}) |",
        "",
        "## Data and split",
        "",
        f"Dataset `{meta['dataset']}`"
        + "".join(f", {k} `{v}`" for k, v in meta["dataset_options"].items() if v)
        + f"; {splits}. Forecast setting: context {setting['context_length']}, horizon "
        f"{setting['horizon']}, patch size {setting['patch_size']}. Validation metrics use "
        f"{meta['val_windows']} evenly spaced windows of the validation split, test metrics "
        f"every window of the test split ({meta['test'].get('windows', '?')}), each from "
        f"{meta['num_samples']} sample paths.",
        "",
        "## Re-alignment",
        "",
        f"{realign['steps']} steps of the family's own training loss on train-split windows"
        + _distilled(realign)
        + f", learning rate {realign['lr']}, batch {realign['batch_size']}, seed {meta['seed']}. "
        "The full model was re-aligned with the same budget, as the reference.",
        "",
        "## Accuracy",
        "",
        "Lower is better. The full model is shown re-aligned (the reference the search "
        "compared against, same budget) and zero-shot (the base model unchanged).",
        "",
        *_metrics_table(meta),
        "",
        *_per_dataset(meta),
        *(f"- `{m}`: {SCALES[m]}" for m in METRICS),
        "",
        "## How to load",
        "",
        f"With {family.library.split('.')[0]}, the family's own library:",
        "",
        "```python",
        f"from {module} import {cls}",
        "",
        f'model = {cls}.from_pretrained("{HERE}")',
        "```",
        "",
        "The forecast setting is in `autoprune.json`; "
        f"`autoprune evaluate --model {HERE}` re-measures the test metrics above.",
        "",
        "## How it was made",
        "",
        "```bash",
        _command(meta),
        export,
        "```",
        "",
        *(
            [
                f"The search spent {meta['search_compute_s']:,.0f} s of compute (its steps before "
                f"the trials and its trials: {meta['trials']} keep sets trained to the full "
                f"budget, and any stopped at a rung); `autoprune report {meta['study']}` says "
                "where it went.",
                "",
            ]
            if meta.get("search_compute_s") is not None
            else []
        ),
        f"autoprune {meta['autoprune_version']}; the study's settings in full: `autoprune.json`.",
    ]
    return "\n".join(lines) + "\n"
