"""What a study is made of, once its file is read (:mod:`sspcmr.study.config` reads and validates it): the
recipes, pretraining methods and variants of :class:`StudyConfig`, and the LightningCLI overrides they carry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRATCH = "scratch"
"""Method key of the U-Net trained from scratch (the paper's baseline)."""

ALL = "all"
"""Subset size meaning every training subject."""

TRANSFERS = ("encoder", "encoder+decoder")
"""What fine-tuning takes from a pretraining run."""

MAX_SEED = 2**32 - 1
"""Seeds go to ``seed_everything`` and NumPy, which take 0 ... 2**32 - 1."""

CHECKPOINTS = ("last", "best")
"""Which checkpoint of a run a study uses: ``last.ckpt`` or ``best.ckpt`` (``--checkpoint.best``)."""


class StudyConfigError(ValueError):
    """A study file that cannot be run; the message names the file and the entry."""


def flatten_overrides(overrides: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested or dotted override mappings as one flat ``{"model.init_args.lr": 0.005}`` mapping.

    A mapping under ``class_path`` / ``init_args`` keys is flattened too, so both spellings work.
    """
    flat: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and "class_path" not in value:
            flat.update(flatten_overrides(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def override_args(overrides: Mapping[str, Any]) -> list[str]:
    """``--key value`` pairs for LightningCLI; values as JSON (lists, null, booleans), strings as they are."""
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


def model_options(args: list[str]) -> dict[str, str]:
    """The model options (``--model.init_args.NAME VALUE``) of a command line, ``{NAME: VALUE}`` with the
    value's spaces dropped (``[8,16]``); results_dir, a run's folder, is left out."""
    pairs = zip(args[1::2], args[2::2], strict=False)  # after the command: --key value pairs
    return {key.removeprefix("--model.init_args."): value.replace(" ", "") for key, value in pairs
            if key.startswith("--model.init_args.") and key != "--model.init_args.results_dir"}


@dataclass(frozen=True)
class CheckpointChoice:
    """Which checkpoints a study's runs use (``checkpoint:`` in the study file, study-wide or per method).

    Args:
        pretraining: the checkpoint of a pretraining run its fine-tunings initialise from.
        evaluation: the checkpoint of a scratch or fine-tuning run its test (and a learning-rate grid's
            validation scoring) loads.

    ``last`` is the reference's (docs/reference.md#quirk-last-checkpoint); ``best`` is the epoch with the lowest
    validation loss (DINO, which has none: training loss), which the study then has those runs keep.
    """

    pretraining: str = "last"
    evaluation: str = "last"


@dataclass(frozen=True)
class RecipeSpec:
    """A base config with overrides (the scratch and fine-tuning recipes)."""

    config: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """One pretraining method of the study.

    Args:
        key: short name used in run IDs (``mim``).
        label: display name in the reports (``MIM``).
        config: the pretraining config (``configs/pretrain/mim.yaml``).
        transfer: what fine-tuning takes from it: ``encoder`` or ``encoder+decoder``.
        overrides: pretraining overrides.
        finetune_overrides: extra fine-tuning overrides for this method's fine-tunings only.
        pretraining: fine-tune from another method's pretraining (its key) instead of pretraining again, e.g.
            the same MIM transferred encoder-only; ``config`` and ``overrides`` then stay empty.
        checkpoint: this method's checkpoint choice (None: the study's).
    """

    key: str
    label: str
    config: str
    transfer: str = "encoder"
    overrides: dict[str, Any] = field(default_factory=dict)
    finetune_overrides: dict[str, Any] = field(default_factory=dict)
    pretraining: str | None = None
    checkpoint: CheckpointChoice | None = None

    @property
    def source(self) -> str:
        """The method key whose pretraining run this method fine-tunes from."""
        return self.pretraining or self.key


@dataclass(frozen=True)
class VariantSpec:
    """A set of fine-tuning and scratch runs sharing a data recipe.

    ``default`` is the main grid (Table 1); the generalisation variants change one thing each:
    ``phase`` trains on some phases (evaluation keeps ``eval_phases``: in- and out-of-domain),
    ``vendor`` trains on a vendor group (``A_B`` or ``C_D``; test unchanged), ``augmentation``
    trains without data augmentation.
    """

    name: str
    kind: str
    methods: tuple[str, ...]
    subsets: tuple[str, ...]
    seeds: tuple[int, ...]
    train_phases: tuple[str, ...] = ("ED", "ES")
    vendors: str | None = None
    augmentation: bool = True


@dataclass(frozen=True)
class StudyConfig:
    """A parsed study file (its format: :mod:`sspcmr.study.config`)."""

    name: str
    path: Path
    output_dir: Path
    data_dir: str
    split: str
    eval_phases: tuple[str, ...]
    pretrain_seed: int
    common: dict[str, Any]
    scratch: RecipeSpec
    finetune: RecipeSpec
    methods: dict[str, MethodSpec]
    variants: tuple[VariantSpec, ...]
    pretrain_split: str | None = None
    learning_rates: tuple[float, ...] = ()
    subset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint: CheckpointChoice = CheckpointChoice()
    merged: dict[str, Any] | None = None
    """The study as run when its file names a ``base``: the file's content merged into its base's (None without)."""

    def label(self, method: str) -> str:
        return "Baseline" if method == SCRATCH else self.methods[method].label

    def checkpoints(self, method: str) -> CheckpointChoice:
        """The checkpoint choice of a method's runs (scratch: the study's)."""
        own = None if method == SCRATCH else self.methods[method].checkpoint
        return own or self.checkpoint
