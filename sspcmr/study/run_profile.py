"""What a study run trains, read off the module and trainer its own ``sspcmr fit`` arguments build: the method,
batch sizes, precision, the trainer's bounds, the data module's options and the FLOPs of one step.

The module is built through the training command's LightningCLI without running it (``run=False``), so every
config file, override and link applies exactly as in the run. Only what cannot matter to the count is changed:
the trainer is built on the CPU in fp32 without a logger (fp16 cannot be built on a CPU; the run's precision is
read from its arguments and config file, :func:`given_precision`) and a fine-tuning's ``init_from`` is dropped
(no checkpoint is read). Nothing is written: no folder, no log, no checkpoint.

Runs that differ only in what cannot change the module (seed, split, phases, folders, the pretrained checkpoint)
share one profile, and profiles with the same network and batch shapes share one FLOP count, so a grid of
hundreds of runs builds a handful of modules.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from sspcmr.shipped_configs import resolve_config

from .flops import StepFlops, count_step_flops, describe_views
from .schedule import TrainerLimits

__all__ = ["RunProfile", "RunProfiles", "given_precision", "option_value"]

# Run arguments whose values differ from run to run without changing the module or the trainer's bounds.
PER_RUN = ("--seed_everything", "--data.seed", "--data.split", "--trainer.default_root_dir", "--trainer.logger",
           "--model.init_args.init_from", "--data.train_phases", "--data.eval_phases")
BUILD_ONLY = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.precision", "32-true",
              "--trainer.logger", "false"]


@dataclass(frozen=True)
class RunProfile:
    """What the runs sharing one set of module arguments train.

    Attributes:
        method: the LightningModule's class name.
        precision: ``trainer.precision`` as the run gives it.
        batch_size: slices per training batch.
        val_batch_size: slices per validation batch.
        data_options: the data module's constructor arguments.
        limits: the trainer's bounds.
        flops: the FLOPs of one step.
    """

    method: str
    precision: str
    batch_size: int
    val_batch_size: int
    data_options: dict
    limits: TrainerLimits
    flops: StepFlops


def option_value(args: list[str], option: str) -> str | None:
    """The last value given to ``option`` in a ``--key value`` argument list (None: not given)."""
    values = [args[i + 1] for i in range(len(args) - 1) if args[i] == option]
    return values[-1] if values else None


def given_precision(args: list[str]) -> str:
    """``trainer.precision`` as a run's arguments give it (the module is built in fp32 on the CPU): the last
    ``--trainer.precision``, else the last ``--config`` file that sets it, else Lightning's default ``32-true``."""
    value = option_value(args, "--trainer.precision")
    if value is not None:
        return value
    configs = [args[i + 1] for i in range(len(args) - 1) if args[i] == "--config"]
    for config in reversed(configs):
        trainer = (yaml.safe_load(Path(resolve_config(config)).read_text()) or {}).get("trainer") or {}
        if trainer.get("precision") is not None:
            return str(trainer["precision"])
    return "32-true"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's and jsonargparse's notes (seed set, GPU available, tips) stay out of the estimate's output."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _limits(trainer) -> TrainerLimits:
    sanity = trainer.num_sanity_val_steps
    return TrainerLimits(max_epochs=trainer.max_epochs, max_steps=trainer.max_steps,
                         limit_train_batches=trainer.limit_train_batches, limit_val_batches=trainer.limit_val_batches,
                         check_val_every_n_epoch=trainer.check_val_every_n_epoch,
                         num_sanity_val_steps=2 if sanity is None else sanity,
                         accumulate_grad_batches=trainer.accumulate_grad_batches or 1)


class RunProfiles:
    """Profiles of run argument lists, built once per distinct module (module docstring)."""

    def __init__(self) -> None:
        self._profiles: dict[tuple, RunProfile] = {}
        self._flops: dict[tuple, StepFlops] = {}

    @staticmethod
    def key(args: list[str]) -> tuple:
        """The argument list with the values of :data:`PER_RUN` options blanked."""
        return tuple("" if i and args[i - 1] in PER_RUN else arg for i, arg in enumerate(args))

    def profile(self, args: list[str]) -> RunProfile:
        """The profile of a run's ``fit`` arguments (``["fit", "--config", ...]``)."""
        key = self.key(args)
        if key not in self._profiles:
            self._profiles[key] = self._build(list(args[1:]))
        return self._profiles[key]

    def _build(self, args: list[str]) -> RunProfile:
        from sspcmr.commands.training import lightning_cli

        build_args = args + BUILD_ONLY
        if option_value(args, "--model.init_args.init_from") is not None:
            build_args += ["--model.init_args.init_from", "null"]

        with _quiet():
            cli = lightning_cli(build_args, run=False)
        model, data = cli.model, cli.datamodule
        labelled = data.mode != "pretrain"
        # The network (its modules) and the shapes it sees fix the count; optimiser settings, seeds and the like
        # do not, so a scratch run and the fine-tunings of its cell share one count.
        network = hashlib.sha256(str(model).encode()).hexdigest()
        val_views = model.validation_augmentation()
        shapes = (describe_views(model.train_augmentation()), val_views and describe_views(val_views))
        key = (type(model).__name__, network, shapes, data.batch_size, data.val_batch_size, labelled)
        if key not in self._flops:
            unused = [model]  # the first count takes the module built here; another is the same class and arguments
            init_args = cli.config.model.init_args.as_dict()

            def fresh():
                return unused.pop() if unused else type(model)(**init_args)

            self._flops[key] = count_step_flops(fresh, data.batch_size, data.val_batch_size, labelled)
        return RunProfile(method=type(model).__name__, precision=given_precision(args),
                          batch_size=data.batch_size, val_batch_size=data.val_batch_size,
                          data_options={k: v for k, v in data.hparams.items() if not k.startswith("_")},
                          limits=_limits(cli.config.trainer), flops=self._flops[key])
