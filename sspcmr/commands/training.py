"""``sspcmr fit | validate | test | predict``: a LightningCLI over any sspcmr LightningModule
(``--model.class_path``, or a YAML config: a file or a shipped config's name) and :class:`CineDataModule`, with
``--print_config``, the resolved config saved with every run, TensorBoard logging, the rich progress bar and
checkpoints that resume a killed run (``--ckpt_path last``; docs/cli.md). ``--checkpoint.*``
(:class:`CheckpointSelection`) keeps more checkpoints than ``last.ckpt``: the best on the validation or the
training loss, and snapshots every N epochs.

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
from sspcmr.checks import check_int
from sspcmr.commands.errors import run_reporting
from sspcmr.commands.names import TRAINING_COMMANDS
from sspcmr.data.datamodule import CineDataModule
from sspcmr.data.errors import DataError
from sspcmr.methods.dino import DINO
from sspcmr.methods.segmentation import Segmentation
from sspcmr.methods.transfer import load_file
from sspcmr.resume import find_last_checkpoint
from sspcmr.shipped_configs import resolve_config_arguments

# Each subcommand saves its resolved config under its own name, so `test` never replaces the training
# run's config.yaml (docs/cli.md).
CONFIG_FILES = {"fit": "config.yaml", "validate": "config-validate.yaml", "test": "config-test.yaml",
                "predict": "config-predict.yaml"}


def loss_keys(model: L.LightningModule) -> tuple[str, str]:
    """The epoch-level validation and training losses ``model`` logs: (best.ckpt's, best-train.ckpt's) metric.

    Pretraining methods log ``val/loss`` and ``train/loss_epoch`` (methods/pretrain.py), Segmentation ``val/loss``
    and ``train/loss``. DINO has no validation loss (the reference validates nothing), so its best checkpoint
    is chosen on the training loss, as the reference chose its DINO ``best_model.pt`` (docs/reference.md#optimisation).
    """
    if isinstance(model, Segmentation):
        return "val/loss", "train/loss"
    if isinstance(model, DINO):
        return "train/loss_epoch", "train/loss_epoch"
    return "val/loss", "train/loss_epoch"


class NamedCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint under a stable file name (no version counter, no metric appended), whose saved state is
    told apart by that name, so two may watch the same metric (DINO's best.ckpt and best-train.ckpt) or the same
    period as ``last.ckpt`` (snapshots every epoch).

    Args:
        filename: the file name without ``.ckpt`` (Lightning's format fields allowed: ``epoch={epoch:04d}``).
        kwargs: the other :class:`~lightning.pytorch.callbacks.ModelCheckpoint` options.
    """

    def __init__(self, filename: str, **kwargs) -> None:
        super().__init__(filename=filename, enable_version_counter=False, auto_insert_metric_name=False, **kwargs)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(filename=self.filename, monitor=self.monitor, mode=self.mode,
                                        every_n_epochs=self._every_n_epochs)


class CheckpointSelection:
    """Checkpoints a fit keeps besides last.ckpt (which is written every epoch whatever these options say).

    They go to the same folder, under stable names (a rerun overwrites them; no version counters) and in the same
    format: each loads as ``--ckpt_path`` or ``--model.init_from`` as ``last.ckpt`` does.

    Args:
        best: keep ``best.ckpt``, the epoch with the lowest ``monitor``, saved right after that epoch's validation.
        best_train: keep ``best-train.ckpt``, the epoch with the lowest ``train_monitor``.
        every_n_epochs: keep a snapshot ``epoch=NNNN.ckpt`` after every N-th epoch (NNNN: the 0-based index of
            the epoch just finished, so ``epoch=0009.ckpt`` follows the 10th); 0 keeps none.
        monitor: the metric of ``best.ckpt``; null: the method's validation loss (``val/loss``), or for DINO,
            which has none, its training loss (``train/loss_epoch``), as the reference chose DINO's best.
        train_monitor: the metric of ``best-train.ckpt``; null: the method's epoch training loss
            (``train/loss_epoch``; Segmentation: ``train/loss``).
    """

    def __init__(self, best: bool = False, best_train: bool = False, every_n_epochs: int = 0,
                 monitor: str | None = None, train_monitor: str | None = None) -> None:
        check_int("checkpoint.every_n_epochs", every_n_epochs, 0)
        for name, value in (("monitor", monitor), ("train_monitor", train_monitor)):
            if value is not None and not value.strip():
                raise ValueError(f"checkpoint.{name} must be a logged metric's name or null; got {value!r}")
        self.best, self.best_train, self.every_n_epochs = best, best_train, every_n_epochs
        self.monitor, self.train_monitor = monitor, train_monitor

    def callbacks(self, model: L.LightningModule) -> list[ModelCheckpoint]:
        """The ModelCheckpoint callbacks that keep what was asked for ``model`` (none by default)."""
        validation, training = loss_keys(model)
        found: list[ModelCheckpoint] = []
        if self.best:
            metric = self.monitor or validation
            # A validation metric is saved right after the validation that logged it (whatever
            # check_val_every_n_epoch is); a training metric at the end of its epoch.
            found.append(NamedCheckpoint("best", monitor=metric, mode="min", save_top_k=1,
                                         save_on_train_epoch_end=not metric.startswith("val/")))
        if self.best_train:
            found.append(NamedCheckpoint("best-train", monitor=self.train_monitor or training, mode="min",
                                         save_top_k=1, save_on_train_epoch_end=True))
        if self.every_n_epochs:
            found.append(NamedCheckpoint("epoch={epoch:04d}", every_n_epochs=self.every_n_epochs, save_top_k=-1,
                                         save_on_train_epoch_end=True))
        return found


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
        parser.add_class_arguments(CheckpointSelection, "checkpoint")

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        # LightningCLI's own, plus the checkpoints --checkpoint.* asks for (they need the model: which loss it logs).
        extra = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        selection = self._get(self.config_init, "checkpoint")
        if selection is not None and self.subcommand in (None, "fit"):
            extra += selection.callbacks(self.model)
        return self._instantiate_trainer({**self._get(self.config_init, "trainer", default={}), **kwargs}, extra)

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
        # ``--ckpt_path``. (save_last=True with save_top_k=0 writes it only when training ends.) More
        # checkpoints: --checkpoint.* (CheckpointSelection).
        "callbacks": [LearningRateMonitor(logging_interval="epoch"),
                      ModelCheckpoint(filename="last", save_top_k=1, every_n_epochs=1, save_on_train_epoch_end=True,
                                      enable_version_counter=False)],
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                   "init_args": {"save_dir": "runs", "name": "sspcmr"}},
        "default_root_dir": "runs",
    }


def lightning_cli(args: Sequence[str] | None, run: bool = True, cli_class: type[TrainingCLI] = TrainingCLI
                  ) -> TrainingCLI:
    """Build (and by default run) the LightningCLI for ``args`` (None: ``sys.argv``); returns it.

    A ``--config`` that is no file but a shipped config's name (``segmentation/baseline``) is replaced by
    that file first (:func:`~sspcmr.shipped_configs.resolve_config`). ``cli_class`` may be a subclass of
    :class:`TrainingCLI` (e.g. one that only parses, to read a command line's resolved config).
    """
    if args is None:  # from the console LightningCLI reads sys.argv itself, so the name is resolved there
        sys.argv[1:] = resolve_config_arguments(sys.argv[1:])
    return cli_class(
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
