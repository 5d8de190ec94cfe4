"""Nothing a user loads runs code: weights only from safetensors, no `_target_` outside uni2ts's
distribution classes in a checkpoint config, only safetensors asked of the hub, and no
remote-code or unpickling call anywhere in the package."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import autoprune
from autoprune.cli import main
from autoprune.errors import ModelLoadError, StudyError
from autoprune.models._base import resolve_directory
from autoprune.models.moirai import MoiraiAdapter
from autoprune.study import mask_url, validate_name

PACKAGE = Path(autoprune.__file__).parent


def _evil_config(
    tiny_model_dir: Path, tmp_path: Path, marker: Path, target: str = "os.system", nested=True
) -> Path:
    evil = tmp_path / "evil"
    shutil.copytree(tiny_model_dir, evil)
    config = json.loads((evil / "config.json").read_text())
    payload = {"_target_": target, "_args_": [f"touch {marker}"]}
    if nested:
        config["distr_output"]["components"][0] = payload
    else:
        config["distr_output"] = payload
    (evil / "config.json").write_text(json.dumps(config))
    return evil


# hydra resolves a dotted path by importing the longest module prefix and walking attributes,
# so these start like a distribution class and still reach os.system / torch.load
BYPASSES = (
    "os.system",
    "uni2ts.distribution.mixture.torch.serialization.os.system",
    "uni2ts.distribution.os.system",
    "uni2ts.distribution.mixture.torch.load",
    "uni2ts.distribution.mixture.MixtureOutput.__init__.__globals__",
    "uni2ts.distribution.mixtureX.MixtureOutput",
)


@pytest.mark.parametrize("target", BYPASSES)
@pytest.mark.parametrize("nested", [True, False], ids=["in-components", "top-level"])
def test_a_config_that_would_run_code_is_refused(tiny_model_dir, tmp_path, target, nested):
    marker = tmp_path / "pwned"
    evil = _evil_config(tiny_model_dir, tmp_path, marker, target, nested)
    with pytest.raises(ModelLoadError, match=re.escape(f"_target_ = {target!r}")):
        MoiraiAdapter.load(evil)
    assert not marker.exists()


def test_a_non_string_target_is_refused(tiny_model_dir, tmp_path):
    evil = _evil_config(tiny_model_dir, tmp_path, tmp_path / "x")
    config = json.loads((evil / "config.json").read_text())
    config["distr_output"]["_target_"] = ["os.system"]
    (evil / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="_target_"):
        MoiraiAdapter.load(evil)


def test_the_allowed_targets_are_uni2ts_distribution_classes(tiny_model_dir):
    """Every allowed name resolves to a uni2ts distribution head class, and the shipped
    checkpoints name only allowed ones (so the allowlist neither opens a hole nor goes stale)."""
    import importlib

    from uni2ts.distribution import DistributionOutput

    from autoprune.models.moirai import SAFE_TARGETS

    resolved = 0
    for name in SAFE_TARGETS:
        module, cls = name.rsplit(".", 1)
        try:
            target = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            continue  # a class this uni2ts release lacks
        assert isinstance(target, type) and issubclass(target, DistributionOutput), name
        resolved += 1
    assert resolved >= len(SAFE_TARGETS) // 2
    shipped = re.findall(r'"_target_": "([^"]+)"', (tiny_model_dir / "config.json").read_text())
    assert shipped and set(shipped) <= SAFE_TARGETS


def test_the_guard_is_needed(tiny_model_dir, tmp_path):
    """uni2ts 1.1 itself would run it: this is what the check above prevents."""
    import uni2ts.model.moirai.module as uni2ts_moirai
    from uni2ts.model.moirai import MoiraiModule

    if hasattr(uni2ts_moirai, "safe_target_check"):
        pytest.skip(
            "uni2ts >= 2.0 (installed here for Moirai-MoE / Moirai-2) refuses such a _target_ "
            "itself; autoprune's core dependency, uni2ts 1.1.1, does not"
        )

    marker = tmp_path / "pwned"
    evil = _evil_config(tiny_model_dir, tmp_path, marker)
    with pytest.raises(Exception):  # noqa: B017 - os.system returns an int, not a head
        MoiraiModule.from_pretrained(evil)
    assert marker.exists()


def test_only_config_and_safetensors_are_asked_of_the_hub(monkeypatch, tmp_path):
    asked = []

    def fake_download(repo_id, allow_patterns=None, local_files_only=False):
        asked.append(allow_patterns)
        return str(tmp_path)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    assert resolve_directory("Salesforce/moirai-1.1-R-small") == tmp_path
    assert asked == [["*.json", "*.safetensors"]]


def test_no_unsafe_loading_call_in_the_package():
    unsafe = re.compile(
        r"trust_remote_code\s*=\s*True"
        r"|pickle\.loads?\("
        r"|(?<![\w.])(?:eval|exec)\("
        r"|torch\.load\((?![^)]*weights_only=True)"
    )
    hits = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert not hits, hits


@pytest.mark.parametrize(
    "url,shown",
    [
        ("postgresql://me:secret@host/db", "postgresql://me:***@host/db"),
        ("postgresql://me:secret@host:abc/db", "postgresql://me:***@host:abc/db"),
        ("postgresql:me:secret@host/db", "postgresql:me:***@host/db"),
        ("mysql+pymysql://me:se%40cret@host:3306/db", "mysql+pymysql://me:***@host:3306/db"),
        ("sqlite:///studies/s1/study.db", "sqlite:///studies/s1/study.db"),
    ],
)
def test_storage_passwords_are_masked_even_in_urls_sqlalchemy_cannot_parse(url, shown):
    assert mask_url(url) == shown


def test_an_unknown_study_on_a_reachable_database_does_not_show_the_password(
    monkeypatch, tmp_path, capsys
):
    """The database answers but holds no such study: the message names the storage, masked."""
    import autoprune.study as study_module

    reachable = study_module.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    monkeypatch.setattr(study_module, "open_storage", lambda url, create=True: reachable)
    url = "postgresql://me:secret@db.example:5432/optuna"
    for command in (["report", "nope"], ["export", "nope", "--out", str(tmp_path / "x")]):
        assert main([*command, "--storage", url]) == 2
        err = capsys.readouterr().err
        assert "secret" not in err and "me:***@db.example" in err, err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["x\n", "kept\n", "a\nb"])
def test_a_study_name_with_a_newline_is_refused(name, studies, capsys):
    with pytest.raises(StudyError, match="is not allowed"):
        validate_name(name)
    assert main(["search", "--study", name, "--trials", "1"]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert not studies.exists()
