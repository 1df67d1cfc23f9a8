"""The ``sspcmr`` command line: ``main(args=None)``.

* ``sspcmr fit | validate | test | predict ...``: a LightningCLI over any sspcmr LightningModule
  (``--model.class_path``, or a YAML config from ``configs/``) and :class:`CineDataModule`, with
  ``--print_config``, the resolved config saved with every run, TensorBoard logging, the rich
  progress bar and checkpoints that resume a killed run (``--ckpt_path last``).
* ``sspcmr synth | prepare | splits | inspect | evaluate | segment | export-backbone ...``: plain commands
  (:mod:`sspcmr.data_cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import yaml

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")


# Each subcommand saves its resolved config under its own name, so `test` never replaces the training
# run's config.yaml (docs/cli.md).
CONFIG_FILES = {"fit": "config.yaml", "validate": "config-validate.yaml", "test": "config-test.yaml",
                "predict": "config-predict.yaml"}


def lightning_cli(args: Sequence[str] | None, run: bool = True):
    """Build (and by default run) the LightningCLI for ``args`` (None: ``sys.argv``); returns it."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.utilities import rank_zero_info

    import sspcmr.methods  # noqa: F401  (registers the methods, so --model SimCLR works without a class path)
    from sspcmr.data.datamodule import CineDataModule
    from sspcmr.data.errors import DataError
    from sspcmr.methods.transfer import load_file
    from sspcmr.resume import find_last_checkpoint

    trainer_defaults = {
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

    class CLI(LightningCLI):
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
            size = getattr(getattr(self.datamodule, "hparams", None), "output_size", None)
            if check is not None and size is not None:
                check(size)

    return CLI(
        L.LightningModule,
        CineDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        trainer_defaults=trainer_defaults,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False, **{name: {"exit_on_error": False} for name in TRAINING_COMMANDS}},
        args=None if args is None else list(args),
        run=run,
        auto_configure_optimizers=False,
    )


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``sspcmr`` console script (tests call it directly); returns the exit code.

    Every error ends as one line ``sspcmr <command>: error: ...`` and exit code 2 (bad input) or 1 (machine
    failure); ``--debug`` or ``SSPCMR_DEBUG=1`` shows the traceback (:mod:`sspcmr.command_errors`).
    """
    from sspcmr.command_errors import DEBUG_FLAG, debug_requested, run_reporting

    debug, argv = debug_requested(list(sys.argv[1:] if args is None else args))
    try:
        if argv and argv[0] in TRAINING_COMMANDS:
            # From the console, LightningCLI reads sys.argv itself (it warns when given both).
            cli_args = None if args is None and DEBUG_FLAG not in sys.argv else argv
            return run_reporting(argv[0], lambda: lightning_cli(cli_args) and 0, debug)
        from sspcmr.data_cli import main as data_main

        return data_main(argv, debug=debug)
    except KeyboardInterrupt:
        if args is not None or debug:  # called from Python (a study, a test): the caller decides
            raise
        print(f"sspcmr {argv[0] if argv else ''}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
