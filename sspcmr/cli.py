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

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")


def _find_last_checkpoint(trainer) -> str | None:
    """The newest ``last.ckpt`` of earlier runs: any version of the loggers, a set dirpath, default_root_dir."""
    from pathlib import Path

    found = [path for logger in trainer.loggers if getattr(logger, "root_dir", None)
             for path in Path(logger.root_dir).glob("*/checkpoints/last.ckpt")]
    found += [path for callback in trainer.checkpoint_callbacks if getattr(callback, "dirpath", None)
              for path in Path(callback.dirpath).glob("last.ckpt")]
    found += Path(trainer.default_root_dir).glob("checkpoints/last.ckpt")
    return str(max(found, key=lambda path: path.stat().st_mtime)) if found else None


def lightning_cli(args: Sequence[str] | None, run: bool = True):
    """Build (and by default run) the LightningCLI for ``args`` (None: ``sys.argv``); returns it."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    import sspcmr.methods  # noqa: F401  (registers the methods, so --model SimCLR works without a class path)
    from sspcmr.data.datamodule import CineDataModule

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
        def before_fit(self) -> None:
            # Lightning looks for "last" only in this run's new logger version folder, where there is none.
            config = self.config_init[self.subcommand]
            if config.get("ckpt_path") == "last":
                config["ckpt_path"] = _find_last_checkpoint(self.trainer) or "last"

    return CLI(
        L.LightningModule,
        CineDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        trainer_defaults=trainer_defaults,
        save_config_kwargs={"overwrite": True},
        args=None if args is None else list(args),
        run=run,
        auto_configure_optimizers=False,
    )


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``sspcmr`` console script (tests call it directly); returns the exit code."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in TRAINING_COMMANDS:
        lightning_cli(None if args is None else argv)
        return 0
    from sspcmr.data_cli import main as data_main

    return data_main(argv)


if __name__ == "__main__":
    sys.exit(main())
