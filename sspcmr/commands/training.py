"""``sspcmr fit | validate | test | predict``: a LightningCLI over any sspcmr LightningModule
(``--model.class_path``, or a YAML config: a file or a shipped config's name) and :class:`CineDataModule`, with
``--print_config``, the resolved config saved with every run, TensorBoard logging, the rich progress bar and
checkpoints that resume a killed run (``--ckpt_path last``; docs/cli.md).

Importing this module imports torch and Lightning; the dispatcher (:mod:`sspcmr.commands.main`) does so
only for these four commands, and a study imports it to train in its own process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import lightning as L
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info

import sspcmr.methods  # noqa: F401  (registers the methods, so --model SimCLR works without a class path)
from sspcmr.commands.errors import run_reporting
from sspcmr.commands.names import TRAINING_COMMANDS
from sspcmr.data.datamodule import CineDataModule
from sspcmr.data.errors import DataError
from sspcmr.methods.transfer import load_file
from sspcmr.resume import find_last_checkpoint
from sspcmr.shipped_configs import resolve_config_arguments

# Each subcommand saves its resolved config under its own name, so `test` never replaces the training
# run's config.yaml (docs/cli.md).
CONFIG_FILES = {"fit": "config.yaml", "validate": "config-validate.yaml", "test": "config-test.yaml",
                "predict": "config-predict.yaml"}


class TrainingCLI(LightningCLI):
    """The LightningCLI of the training commands: checkpoints checked before use, ``--ckpt_path last``
    resolved to this experiment's ``last.ckpt``, one config file per subcommand."""

    # The data module's grid and seed are the method's too: set once (on the data module), linked here, so a
    # method's own augmentation and the evaluation resampling can never disagree (methods/base.py).
    LINKED = (("data.output_size", "model.init_args.output_size"),
              ("data.output_spacing", "model.init_args.output_spacing"),
              ("data.seed", "model.init_args.augmentation_seed"))

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in self.LINKED:
            parser.link_arguments(source, target)

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the hyperparameters of --ckpt_path here; check the file first so a foreign,
        # corrupt or code-carrying checkpoint is refused in one line (as data only: weights_only=True).
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("weights_only") is False:
            raise DataError("--weights_only false is not supported: sspcmr loads checkpoints as data only")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and path != "last":
            load_file(path, "--ckpt_path")
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        subcommand = self.subcommand
        if subcommand is None:  # run=False: nothing is run, nothing to resolve
            return
        config = self.config[subcommand]
        self.save_config_kwargs["config_filename"] = CONFIG_FILES[subcommand]
        if "weights_only" in self._subcommand_method_arguments.get(subcommand, []):
            config["weights_only"] = True  # Lightning's own restore, whatever torch's default
        if config.get("ckpt_path") == "last":
            current = yaml.safe_load(self._parser(subcommand).dump(config, skip_none=False))
            path, version = find_last_checkpoint(config, current)
            if version is not None:  # continue in the run's own folder
                config.trainer.logger.init_args.version = version
            config["ckpt_path"] = str(path)
            rank_zero_info(f"sspcmr {subcommand}: resuming from {path}")

    def after_instantiate_classes(self) -> None:
        # The network / image-size check needs both objects; here it runs before any folder or log exists
        # (the modules repeat it in setup() for Python users).
        check = getattr(self.model, "check_output_size", None)
        size = getattr(self.model, "output_size", None)
        if check is not None and size is not None:
            check(size)


def trainer_defaults() -> dict:
    """The Trainer's defaults (new callback objects on every call)."""
    return {
        # The progress bar is Lightning's rich one (rich is a dependency, so Lightning picks it).
        # ``last.ckpt`` after every epoch (after its validation, if any), so a killed run resumes with
        # ``--ckpt_path``. (save_last=True with save_top_k=0 writes it only when training ends.)
        "callbacks": [LearningRateMonitor(logging_interval="epoch"),
                      ModelCheckpoint(filename="last", save_top_k=1, every_n_epochs=1, save_on_train_epoch_end=True,
                                      enable_version_counter=False)],
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                   "init_args": {"save_dir": "runs", "name": "sspcmr"}},
        "default_root_dir": "runs",
    }


def lightning_cli(args: Sequence[str] | None, run: bool = True) -> TrainingCLI:
    """Build (and by default run) the LightningCLI for ``args`` (None: ``sys.argv``); returns it.

    A ``--config`` that is no file but a shipped config's name (``segmentation/baseline``) is replaced by
    that file first (:func:`~sspcmr.shipped_configs.resolve_config`).
    """
    if args is None:  # from the console LightningCLI reads sys.argv itself, so the name is resolved there
        sys.argv[1:] = resolve_config_arguments(sys.argv[1:])
    return TrainingCLI(
        L.LightningModule,
        CineDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        trainer_defaults=trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False, **{name: {"exit_on_error": False} for name in TRAINING_COMMANDS}},
        args=None if args is None else resolve_config_arguments(args),
        run=run,
        auto_configure_optimizers=False,
    )


def run_training(argv: Sequence[str], debug: bool = False, from_sys_argv: bool = False) -> int:
    """Run ``sspcmr fit|validate|test|predict``; returns the exit code.

    Args:
        argv: the command line after ``sspcmr``, starting with the command, without ``--debug``.
        debug: re-raise errors with their traceback instead of one line and an exit code
            (:func:`~sspcmr.commands.errors.run_reporting`).
        from_sys_argv: let LightningCLI read ``sys.argv`` itself (from the console: it warns when it is
            given arguments as well).
    """
    args = None if from_sys_argv else list(argv)
    return run_reporting(argv[0], lambda: lightning_cli(args) and 0, debug)
