"""The reference profile: ``paper-table1.yaml`` runs the reference's choice for every option of the quirk table
(docs/reference.md, "Quirks"), as each run's command line resolves it, and ``--list`` shows DINO's
initialisation; the ``-sspcmr-recommended`` variants differ from their base exactly where their headers say."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sspcmr.commands.main import main
from sspcmr.commands.training import TrainingCLI, lightning_cli
from sspcmr.study.config import load_study
from sspcmr.study.runner import StudyRunner

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


class ParseOnly(TrainingCLI):
    """Resolves a training command line (config files, overrides, links, defaults) and builds nothing."""

    def instantiate_classes(self) -> None:
        pass

    def after_instantiate_classes(self) -> None:
        pass


def effective_config(args: list[str]) -> dict:
    """What ``sspcmr fit|test ARGS`` trains or tests with, as plain data."""
    return lightning_cli(args[1:], run=False, cli_class=ParseOnly).config.as_dict()


def quirk_rows() -> dict[str, str]:
    """The quirk table at the top of docs/reference.md: ``{anchor: "in sspcmr" column}``."""
    rows = {}
    for line in REFERENCE.read_text().splitlines():
        match = re.match(r"^\| \[(quirk-[a-z0-9-]+)\]\(#quirk-[a-z0-9-]+\) \|.*\| (.*) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


@pytest.fixture(scope="module")
def paper() -> dict:
    """paper-table1's runs, one per kind of command line: every pretraining, scratch and each fine-tuning at
    one subset and seed, with their resolved fit configs, test arguments and the models' training views."""
    runner = StudyRunner(load_study("study/paper-table1", output_dir="/nonexistent/paper-table1"))
    chosen = [run for run in runner.runs if run.kind == "pretrain" or (run.subset == "10" and run.seed == 0)]
    out = {}
    for run in chosen:
        fit_args = runner.arguments(run, "fit")
        config = effective_config(fit_args)
        model = config["model"]
        module_name, _, name = model["class_path"].rpartition(".")
        init = {**model["init_args"], "channels": [8, 16]}  # a small network: only the views are looked at
        if name == "DINO":
            init.update(output_dim=64, hidden_dim=32, bottleneck_dim=16)
        module = getattr(importlib.import_module(module_name), name)(**init)
        out[run.id] = {"run": run, "fit": fit_args, "config": config, "views": module.train_augmentation().views,
                       "test": runner.arguments(run, "test") if run.kind != "pretrain" else None}
    return out


def init_args(entry: dict) -> dict:
    return entry["config"]["model"]["init_args"]


def option(args: list[str], key: str) -> str | None:
    return args[args.index(key) + 1] if key in args else None


def every_run(paper: dict, ok: Callable[[dict], bool], kinds: tuple[str, ...] = ("pretrain", "scratch", "finetune"),
              model: str = "") -> None:
    """Assert ``ok(entry)`` for every run of ``kinds`` (whose model class name contains ``model``)."""
    wrong = [run_id for run_id, entry in paper.items() if entry["run"].kind in kinds
             and model in entry["config"]["model"]["class_path"] and not ok(entry)]
    assert not wrong, wrong


def views_have(attribute: Callable, value: str) -> Callable[[dict], bool]:
    return lambda entry: {attribute(view) for view in entry["views"]} == {value}


TRAINED = ("scratch", "finetune")
# quirk anchor -> the check that paper-table1's runs use the reference's value of the option reproducing it
REFERENCE_CHECKS: dict[str, Callable[[dict], None]] = {
    "quirk-intensity-scale": lambda p: every_run(p, views_have(lambda v: v.intensity.scale_convention, "monai")),
    "quirk-gt-centring": lambda p: every_run(p, views_have(lambda v: v.geometry.centring, "gt")),
    "quirk-centre-convention": lambda p: every_run(p, views_have(lambda v: v.geometry.centre_convention,
                                                                 "reference")),
    # the filter restricts validation and test to the training phases: the main grid trains on both
    "quirk-phase-filter": lambda p: every_run(
        p, lambda e: e["config"]["data"]["eval_phases"] == e["config"]["data"]["train_phases"] == ["ED", "ES"],
        TRAINED),
    "quirk-dino-teacher-init": lambda p: every_run(p, lambda e: init_args(e)["teacher_init"] == "separate",
                                                   model="DINO"),
    "quirk-dino-training": lambda p: every_run(p, lambda e: e["config"]["trainer"]["gradient_clip_val"] is None),
    "quirk-last-checkpoint": lambda p: every_run(
        p, lambda e: option(e["test"], "--ckpt_path").endswith("/last.ckpt"), TRAINED),
    # no best checkpoint kept, none loaded
    "quirk-noisy-best-checkpoint": lambda p: every_run(
        p, lambda e: "--checkpoint.best" not in e["fit"]
        and (e["run"].kind != "finetune" or init_args(e)["init_from"].endswith("/last.ckpt"))),
    "quirk-not-nnunet": lambda p: every_run(p, lambda e: init_args(e)["deep_supervision"] == "reference", TRAINED),
    "quirk-pcl-boundary": lambda p: every_run(p, lambda e: init_args(e)["boundary"] == "reference", model="PCL"),
}
# quirks of fixed code paths, with no run option to set
NO_RUN_OPTION = {"quirk-unlinked-scale", "quirk-dino-local-crops", "quirk-dino-loader-sync", "quirk-save-predictions",
                 "quirk-subject-statistics", "quirk-frame-matching", "quirk-csv-ed-es", "quirk-pcl-position",
                 "quirk-weight-decay", "quirk-per-slice-dice", "quirk-slice-position"}


def test_every_quirk_of_the_table_is_checked_or_has_no_run_option() -> None:
    rows = quirk_rows()
    assert len(rows) >= 20 and "quirk-dino-teacher-init" in rows
    # options of `sspcmr prepare` shape the prepared data, which a study takes as it is
    unclassified = {anchor for anchor, where in rows.items() if "prepare" not in where} - set(REFERENCE_CHECKS) \
        - NO_RUN_OPTION
    assert not unclassified, f"new quirk rows: add them to REFERENCE_CHECKS or NO_RUN_OPTION: {unclassified}"
    assert set(REFERENCE_CHECKS) <= set(rows) and NO_RUN_OPTION <= set(rows)


@pytest.mark.parametrize("anchor", sorted(REFERENCE_CHECKS))
def test_paper_table1_runs_the_reference_value(paper, anchor: str) -> None:
    assert {e["run"].kind for e in paper.values()} == {"pretrain", "scratch", "finetune"}
    assert {e["run"].method for e in paper.values()} >= {"simclr", "pcl", "dino", "mim", "scratch"}
    REFERENCE_CHECKS[anchor](paper)


def test_the_checks_can_fail(paper) -> None:
    dino = paper["pretrain-dino"]
    changed = {**dino, "config": {**dino["config"], "model": {
        **dino["config"]["model"], "init_args": {**init_args(dino), "teacher_init": "student"}}}}
    with pytest.raises(AssertionError, match="pretrain-dino"):
        REFERENCE_CHECKS["quirk-dino-teacher-init"]({"pretrain-dino": changed})
    finetune = paper["mim-n10-s0"]
    with pytest.raises(AssertionError, match="mim-n10-s0"):
        REFERENCE_CHECKS["quirk-noisy-best-checkpoint"](
            {"mim-n10-s0": {**finetune, "fit": [*finetune["fit"], "--checkpoint.best", "true"]}})
    with pytest.raises(AssertionError, match="mim-n10-s0"):
        REFERENCE_CHECKS["quirk-last-checkpoint"](
            {"mim-n10-s0": {**finetune, "test": ["test", "--ckpt_path", "best.ckpt"]}})


def test_the_reference_values_equal_to_defaults_are_stated_in_the_file() -> None:
    # pinned, so a change of sspcmr's defaults cannot change the reference profile unnoticed
    study = load_study("study/paper-table1")
    assert study.methods["pcl"].overrides["model.init_args.boundary"] == "reference"
    assert study.methods["dino"].overrides["model.init_args.teacher_init"] == "separate"
    assert "checkpoint" in yaml.safe_load(study.path.read_text())


def test_list_shows_the_reference_dino_initialisation(tmp_path, capsys) -> None:
    assert main(["study", "--config", "study/paper-table1", "--list", "--kind", "pretrain",
                 "--output-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "options" in lines[0] and "init_ckpt" in lines[0] and "test_ckpt" in lines[0]
    dino = next(line for line in lines if "pretrain-dino" in line)
    assert "teacher_init=separate" in dino
    assert all("teacher_init" not in line for line in lines if "pretrain-dino" not in line)


def normalised(args: list[str], output_dir: Path) -> dict[str, str]:
    """A command line as ``{option: value}``, the study's folder replaced by ``<out>``."""
    return {key: value.replace(str(output_dir), "<out>") for key, value in zip(args[1::2], args[2::2], strict=True)}


def differences(base: str, variant: str) -> dict[str, set[tuple[str, str | None, str | None]]]:
    """``{run id: {(command option, value in base, value in variant)}}`` of the fit and test command lines."""
    runners = [StudyRunner(load_study(f"study/{name}")) for name in (base, variant)]
    assert [run.id for run in runners[0].runs] == [run.id for run in runners[1].runs]
    found = {}
    for first, second in zip(runners[0].runs, runners[1].runs, strict=True):
        changed = set()
        for command in ("fit", "test") if first.kind != "pretrain" else ("fit",):
            a, b = (normalised(r.arguments(run, command), r.study.output_dir)
                    for r, run in ((runners[0], first), (runners[1], second)))
            changed |= {(f"{command} {key}", a.get(key), b.get(key)) for key in a.keys() | b.keys()
                        if a.get(key) != b.get(key)}
        found[first.id] = changed
    return found


@pytest.mark.parametrize(("base", "variant"), [("paper-table1", "paper-table1-sspcmr-recommended"),
                                               ("generalisation", "generalisation-sspcmr-recommended")])
def test_recommended_variants_differ_exactly_where_their_headers_say(base: str, variant: str) -> None:
    header = (ROOT / "configs" / "study" / f"{variant}.yaml").read_text()
    assert "scale_convention: multiplier" in header and "evaluation: best" in header
    assert ("teacher_init: student" in header) == ("boundary: exact" in header) == (base == "paper-table1")
    scaling = {("fit --model.init_args.scale_convention", None, "multiplier")}
    for run_id, changed in differences(base, variant).items():
        expected = set(scaling)
        if run_id == "pretrain-dino":
            expected.add(("fit --model.init_args.teacher_init", "separate", "student"))
        if run_id == "pretrain-pcl":
            expected.add(("fit --model.init_args.boundary", "reference", "exact"))
        if not run_id.startswith("pretrain-"):
            best = f"<out>/runs/{run_id}/logs/fit/checkpoints/best.ckpt"
            last = best.replace("best.ckpt", "last.ckpt")
            expected |= {("fit --checkpoint.best", None, "true"), ("test --ckpt_path", last, best),
                         ("test --model.init_args.scale_convention", None, "multiplier")}
        assert changed == expected, run_id
