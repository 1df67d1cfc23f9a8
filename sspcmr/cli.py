"""The ``sspcmr`` command line: ``main(args=None)``.

* ``sspcmr fit | validate | test | predict ...``: a LightningCLI over any sspcmr LightningModule
  (``--model.class_path``, or a YAML config from ``configs/``) and :class:`CineDataModule`, with
  ``--print_config``, the resolved config saved with every run, TensorBoard logging, the rich
  progress bar and checkpoints that resume a killed run (``--ckpt_path last``).
* ``sspcmr synth | prepare | splits | inspect ...``: the data commands (:mod:`sspcmr.data_cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

TRAINING_COMMANDS = ("fit", "validate", "test", "predict")


def lightning_cli(args: Sequence[str] | None, run: bool = True):
    """Build (and by default run) the LightningCLI for ``args`` (None: ``sys.argv``); returns it."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from sspcmr.data.datamodule import CineDataModule

    trainer_defaults = {
        # The progress bar is Lightning's rich one (rich is a dependency, so Lightning picks it).
        "callbacks": [LearningRateMonitor(logging_interval="epoch"),
                      ModelCheckpoint(save_last=True, save_top_k=0, every_n_epochs=1)],
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                   "init_args": {"save_dir": "runs", "name": "sspcmr"}},
        "default_root_dir": "runs",
    }
    return LightningCLI(
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
