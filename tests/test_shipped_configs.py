"""The shipped configs by name (``sspcmr configs``, ``--config NAME``, study files) from a folder that is not a
clone of the repository, and help texts that point at the docs site rather than at files of the repository."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest
import yaml

from sspcmr.commands.main import build_parser, main
from sspcmr.data.errors import DataError
from sspcmr.links import DOCS_URL, docs_page
from sspcmr.shipped_configs import (
    config_names,
    configs_root,
    packaged_config,
    resolve_config,
    resolve_config_arguments,
)
from sspcmr.study.config import load_study

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHIPPED = sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.y*ml"))
# A LightningCLI run that stays tiny and off the GPU (the values that matter here come from the config).
TINY = ["--model.init_args.channels", "[8,16,32,64]", "--trainer.accelerator", "cpu", "--trainer.devices", "1"]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without a ``configs/`` of its own, as a pip user's."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_yaml_under_configs_has_a_name() -> None:
    assert configs_root() == CONFIGS  # a source checkout reads the repository's folder itself
    assert config_names() == SHIPPED
    assert {"segmentation/baseline", "pretrain/mim", "demo/mim", "study/smoke"} <= set(SHIPPED)


@pytest.mark.parametrize("form", ["pretrain/mim", "pretrain/mim.yaml", "configs/pretrain/mim.yaml", "./pretrain/mim"])
def test_every_form_of_a_name_resolves_to_the_shipped_file(form: str, elsewhere: Path) -> None:
    assert packaged_config(form) == CONFIGS / "pretrain" / "mim.yaml"
    assert resolve_config(form) == str(CONFIGS / "pretrain" / "mim.yaml")


def test_an_existing_file_wins_and_anything_else_is_left_alone(elsewhere: Path) -> None:
    (elsewhere / "pretrain").mkdir()
    (elsewhere / "pretrain" / "mim.yaml").write_text("model: {}\n")
    assert resolve_config("pretrain/mim.yaml") == "pretrain/mim.yaml"  # the user's own file, unchanged
    for value in ("", "nothing/here.yaml", "../configs/pretrain/mim", "x" * 5000, "{trainer: {max_epochs: 1}}"):
        assert resolve_config(value) == value  # LightningCLI or the study reports it as before


def test_an_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(DataError, match=r"no shipped config named 'pretrain/mmi'; did you mean pretrain/mim"):
        packaged_config("pretrain/mmi")


def test_config_options_resolve_in_every_spelling(elsewhere: Path) -> None:
    mim, baseline = str(CONFIGS / "pretrain" / "mim.yaml"), str(CONFIGS / "segmentation" / "baseline.yaml")
    argv = ["fit", "--config", "pretrain/mim", "--config=segmentation/baseline", "-c", "pretrain/mim.yaml",
            "--data.split", "pretrain/mim"]
    assert resolve_config_arguments(argv) == ["fit", "--config", mim, f"--config={baseline}", "-c", mim,
                                              "--data.split", "pretrain/mim"]


def test_configs_list_names_every_config_with_its_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "list"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[:len(SHIPPED)]}
    assert list(rows) == SHIPPED
    assert rows["segmentation/baseline"] == "fit" and rows["study/smoke"] == "study"
    assert main(["configs", "list", "--kind", "study"]) == 0
    assert all(line.startswith("study/") for line in capsys.readouterr().out.splitlines()[:-2])


def test_configs_show_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "show", "segmentation/baseline.yaml"]) == 0
    assert capsys.readouterr().out == (CONFIGS / "segmentation" / "baseline.yaml").read_text()
    assert main(["configs", "show", "segmentation/baselin"]) == 2
    assert "did you mean segmentation/baseline" in capsys.readouterr().err


def test_configs_copy_into_a_folder_or_a_file_and_never_over_one(elsewhere: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = (CONFIGS / "demo" / "mim.yaml").read_text()
    assert main(["configs", "copy", "demo/mim", "mine/"]) == 0
    assert (elsewhere / "mine" / "mim.yaml").read_text() == source
    assert main(["configs", "copy", "demo/mim", "mine"]) == 2  # an existing folder: into it, and it is there
    assert "mim.yaml exists; --force replaces it" in capsys.readouterr().err
    (elsewhere / "pretraining.yaml").write_text("mine\n")
    assert main(["configs", "copy", "demo/mim", "pretraining.yaml"]) == 2
    assert (elsewhere / "pretraining.yaml").read_text() == "mine\n"
    assert main(["configs", "copy", "demo/mim", "pretraining.yaml", "--force"]) == 0
    assert (elsewhere / "pretraining.yaml").read_text() == source


def _check_baseline(cli) -> None:
    """The parsed run is the shipped baseline's: its method, schedule and rate, with the tiny override."""
    baseline = yaml.safe_load((CONFIGS / "segmentation" / "baseline.yaml").read_text())
    assert cli.config.model.class_path == baseline["model"]["class_path"]
    assert cli.config.model.init_args.lr == baseline["model"]["init_args"]["lr"]
    assert cli.config.trainer.max_epochs == baseline["trainer"]["max_epochs"]
    assert list(cli.config.model.init_args.channels) == [8, 16, 32, 64]


def test_fit_takes_a_shipped_name_from_python(elsewhere: Path) -> None:
    from sspcmr.commands.training import lightning_cli

    _check_baseline(lightning_cli(["--config", "segmentation/baseline", *TINY], run=False))


def test_fit_takes_a_shipped_name_from_the_console(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sspcmr.commands.training import lightning_cli

    monkeypatch.setattr(sys, "argv", ["sspcmr", "--config", "configs/segmentation/baseline.yaml", *TINY])
    _check_baseline(lightning_cli(None, run=False))  # LightningCLI reads sys.argv itself
    assert sys.argv[2] == str(CONFIGS / "segmentation" / "baseline.yaml")


def test_study_files_name_shipped_configs(elsewhere: Path) -> None:
    (elsewhere / "own.yaml").write_text("model: {}\n")
    (elsewhere / "study.yaml").write_text(yaml.safe_dump({
        "name": "s", "output_dir": "out", "data": {"data_dir": "prepared", "split": "split.yaml"},
        "scratch": {"config": "segmentation/baseline"}, "finetune": {"config": "configs/segmentation/finetune.yaml"},
        "methods": {"mim": {"config": "pretrain/mim.yaml"}, "own": {"config": "own.yaml"}}}))
    study = load_study("study.yaml")
    assert study.scratch.config == str(CONFIGS / "segmentation" / "baseline.yaml")
    assert study.finetune.config == str(CONFIGS / "segmentation" / "finetune.yaml")
    assert study.methods["mim"].config == str(CONFIGS / "pretrain" / "mim.yaml")
    assert study.methods["own"].config == "own.yaml"  # a file of the working folder stays as written


def test_a_shipped_study_loads_by_name_outside_a_clone(elsewhere: Path) -> None:
    study = load_study("study/smoke")
    assert study.path == CONFIGS / "study" / "smoke.yaml" and study.name == "smoke"
    assert study.scratch.config == str(CONFIGS / "segmentation" / "baseline.yaml")  # its configs/... entries too
    assert all(Path(m.config).is_file() for m in study.methods.values())


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    """Every description and help string of ``parser`` and its subcommands."""
    texts = [parser.description or ""] + [action.help or "" for action in parser._actions]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts += [choice.help or "" for choice in action._choices_actions]
            for sub in action.choices.values():
                texts += _help_texts(sub)
    return texts


def test_help_texts_point_at_the_docs_site_not_at_repository_files() -> None:
    texts = _help_texts(build_parser())
    local = [text for text in texts if re.search(r"(?<![\w/.])(docs|configs)/[\w./-]*\.(md|ya?ml)\b", text)]
    assert not local, local  # a pip user has neither docs/ nor configs/: docs_page(...) and config names
    assert any(DOCS_URL in text for text in texts)


def test_docs_links_name_existing_pages_and_anchors() -> None:
    assert docs_page("evaluation.md") == DOCS_URL + "evaluation/"
    assert docs_page("methods/README.md#export") == DOCS_URL + "methods/#export"
    sources = "\n".join(path.read_text() for path in (ROOT / "sspcmr").rglob("*.py"))
    pages = set(re.findall(r"docs_page\([\"']([^\"']+)[\"']\)", sources))
    assert pages
    for page in pages:
        path, _, anchor = page.partition("#")
        text = (ROOT / "docs" / path).read_text()
        headings = {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                    for line in text.splitlines() if line.startswith("#")}
        assert not anchor or anchor in headings, (page, sorted(headings))
