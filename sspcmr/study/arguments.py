"""The command line of each run of a study: which config and overrides it starts from (pretraining, scratch or
fine-tuning recipe, per-size overrides, the grid's learning rate, the transfer from its pretraining) and what the
runner forces (seed, split, folders, logger), for ``fit``, ``test`` and the validation scoring of rate grids."""

from __future__ import annotations

from pathlib import Path

from .grid import Run
from .spec import StudyConfig, override_args

__all__ = ["CHECKPOINT", "VALIDATION_RESULTS", "VALIDATION_SPLIT", "checkpoint", "run_arguments", "run_dir"]

VALIDATION_SPLIT = "validation-split.yaml"
"""A learning-rate grid run's split with its validation subjects in the test part (training unchanged)."""
VALIDATION_RESULTS = "validation_results"
"""Where a grid run's native-space scores on its validation subjects go (the rate is chosen on them)."""

CHECKPOINT = Path("logs") / "fit" / "checkpoints" / "last.ckpt"


def run_dir(study: StudyConfig, run_id: str) -> Path:
    """A run's folder."""
    return study.output_dir / "runs" / run_id


def checkpoint(study: StudyConfig, run_id: str, which: str | None = None) -> Path:
    """A run's ``last.ckpt`` (``which`` None or ``last``: what its resumption continues from) or ``best.ckpt``
    (``best``; written when the study's ``checkpoint:`` choice uses it)."""
    return (run_dir(study, run_id) / CHECKPOINT).with_name(f"{which or 'last'}.ckpt")


def _recipe(study: StudyConfig, run: Run) -> tuple[str, dict]:
    """The base config and overrides of a run, before what the runner forces."""
    if run.kind == "pretrain":
        spec = study.methods[run.method]
        return spec.config, {**study.common, **spec.overrides}
    rate = {} if run.lr is None else {"model.init_args.lr": run.lr}
    size = study.subset_overrides.get(str(run.subset), {})
    if run.kind == "scratch":
        return study.scratch.config, {**study.common, **study.scratch.overrides, **size, **rate}
    spec = study.methods[run.method]
    return study.finetune.config, {
        **study.common, **study.finetune.overrides, **spec.finetune_overrides, **size, **rate,
        "model.init_args.init_from": str(checkpoint(study, run.depends_on, run.init_checkpoint)),
        "model.init_args.transfer": spec.transfer,
    }


def run_arguments(study: StudyConfig, run: Run, command: str) -> list[str]:
    """The ``sspcmr fit`` / ``sspcmr test`` arguments of a run (what its process is started with); ``validate``
    gives the ``test`` arguments that score it on its validation subjects (learning-rate grids)."""
    folder = run_dir(study, run.id)
    config, overrides = _recipe(study, run)
    forced: dict = {
        "seed_everything": run.seed,
        "data.data_dir": study.data_dir,
        "data.seed": run.seed,
        "trainer.default_root_dir": str(folder),
        "trainer.logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                           "init_args": {"save_dir": str(folder), "name": "logs", "version": command}},
    }
    if run.kind == "pretrain":
        # A method may name its own split (a supervised control must not see the labels of an unseen vendor).
        own = overrides.get("data.split")
        forced["data.split"] = own or study.pretrain_split or study.split
    else:
        forced.update({
            "data.split": str(folder / "split.yaml"),  # the drawn subset, vendor-filtered: see split.yaml
            "data.subset_subjects": None, "data.vendors": None,
            "data.train_phases": list(run.train_phases), "data.eval_phases": list(study.eval_phases),
        })
        if not run.augmentation:
            forced["model.init_args.augmentation"] = False
    args = [command, "--config", config, *override_args({**overrides, **forced})]
    tested = str(checkpoint(study, run.id, run.test_checkpoint))  # the study's checkpoint choice: last or best
    if command == "fit" and run.keep_best:  # a test or a fine-tuning loads best.ckpt: the fit keeps it
        args += ["--checkpoint.best", "true"]
    if command == "test":
        args += ["--ckpt_path", tested, "--model.init_args.results_dir", str(folder / "results")]
    if command == "validate":  # scored like the test, on the validation subjects (selection of the rate)
        args[0] = "test"
        args += ["--data.split", str(folder / VALIDATION_SPLIT), "--ckpt_path", tested,
                 "--model.init_args.results_dir", str(folder / VALIDATION_RESULTS)]
    return args
