"""The study file (``configs/study/*.yaml``): which pretraining methods, labelled-subset sizes, seeds and
generalisation variants make up a study, and the configs its runs are built from.

A study file is YAML::

    name: smoke
    output_dir: data/demo/studies/smoke      # every run in <output_dir>/runs/<id>/, reports in report/
    data: {data_dir: data/demo/prepared, split: data/demo/split.yaml}
                                             # optional data.pretrain_split: the split whose training and
                                             # validation subjects pretraining uses (a larger unlabelled pool)
    subset_overrides: {1: {trainer.max_epochs: 400}}   # optional: overrides of the scratch and fine-tuning
                                             # runs of one subset size (e.g. an equal number of steps per size)
    learning_rates: [0.005, 0.01, 0.02]      # optional: every scratch and fine-tuning cell at each rate;
                                             # the report keeps, per method and subset, the rate with the best
                                             # mean validation Dice (native space, validation subjects only)
    seeds: [0, 1]                            # seed S draws labelled subset S and seeds training with S
    subsets: [2, all]                        # labelled training subjects; "all" = every training subject
    eval_phases: [ED, ES]                    # phases scored on the test subjects
    common: {trainer.accelerator: cpu}       # LightningCLI overrides for every run (fit and test)
    scratch: {config: configs/segmentation/baseline.yaml, overrides: {...}}
    finetune: {config: configs/segmentation/finetune.yaml, overrides: {...}}
    methods:                                 # pretraining methods: each pretrains once, fine-tuned per cell
      mim: {label: MIM, config: configs/pretrain/mim.yaml, transfer: encoder+decoder,
            overrides: {...}, finetune_overrides: {...}}
    variants:                                # generalisation experiments (optional)
      - {name: ed-only, train_phases: [ED], methods: [scratch, mim]}
      - {name: vendors-AB, vendors: A_B}
      - {name: no-augmentation, augmentation: false, methods: [scratch, mim]}

Overrides are LightningCLI arguments without the leading ``--``, as a flat mapping of dotted keys
(``model.init_args.lr: 0.005``) or nested mappings; values are passed as JSON. Relative paths are taken
from the working directory, like every other sspcmr config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sspcmr.data.splits import VENDOR_GROUPS

SCRATCH = "scratch"
"""Method key of the U-Net trained from scratch (the paper's baseline)."""

ALL = "all"
"""Subset size meaning every training subject."""

TRANSFERS = ("encoder", "encoder+decoder")
MAX_SEED = 2**32 - 1
"""Seeds go to ``seed_everything`` and NumPy, which take 0 ... 2**32 - 1."""
_KEY = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


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
    """

    key: str
    label: str
    config: str
    transfer: str = "encoder"
    overrides: dict[str, Any] = field(default_factory=dict)
    finetune_overrides: dict[str, Any] = field(default_factory=dict)
    pretraining: str | None = None

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
    """A parsed study file (see the module docstring)."""

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

    def label(self, method: str) -> str:
        return "Baseline" if method == SCRATCH else self.methods[method].label


def _is_int(value: Any) -> bool:
    """A YAML integer: ``abc``, ``1.9`` and booleans (``true`` is not 1) are not."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seed(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_SEED


def _seed(value: Any, where: str) -> int:
    if not _is_seed(value):
        raise StudyConfigError(f"{where} must be an integer in [0, {MAX_SEED}]; got {value!r}")
    return value


def _subset(value: Any, where: str) -> str:
    if isinstance(value, str) and value.lower() == ALL:
        return ALL
    if not _is_int(value) or value < 1:
        raise StudyConfigError(f"{where}: subset sizes are positive integers or 'all'; got {value!r}")
    return str(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(_is_seed(s) for s in value):
        raise StudyConfigError(f"{where}: seeds must be a non-empty list of integers in [0, {MAX_SEED}]; got {value!r}")
    if len(set(value)) != len(value):
        raise StudyConfigError(f"{where}: repeated seeds {value}")
    return tuple(value)


def _learning_rates(value: Any, where: str) -> tuple[float, ...]:
    if value is None:
        return ()
    ok = isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in value)
    if not ok:
        raise StudyConfigError(f"{where} must be a non-empty list of positive numbers; got {value!r}")
    if len(set(value)) != len(value):
        raise StudyConfigError(f"{where}: repeated rates {value}")
    return tuple(float(v) for v in value)


def _mapping(raw: Any, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise StudyConfigError(f"{where} must be a mapping; got {type(raw).__name__}")
    return dict(raw)


def _recipe(raw: Any, where: str) -> RecipeSpec:
    raw = _mapping(raw, where)
    if "config" not in raw:
        raise StudyConfigError(f"{where} needs 'config' (a LightningCLI YAML such as configs/segmentation/...)")
    unknown = set(raw) - {"config", "overrides"}
    if unknown:
        raise StudyConfigError(f"{where}: unknown keys {sorted(unknown)}")
    return RecipeSpec(str(raw["config"]), flatten_overrides(_mapping(raw.get("overrides"), f"{where}.overrides")))


def _method(key: str, raw: Any, where: str) -> MethodSpec:
    raw = _mapping(raw, where)
    if not _KEY.match(key) or key == SCRATCH:
        raise StudyConfigError(f"{where}: method keys are lower-case names other than 'scratch'; got {key!r}")
    unknown = set(raw) - {"label", "config", "transfer", "overrides", "finetune_overrides", "pretraining"}
    if unknown:
        raise StudyConfigError(f"{where}: unknown keys {sorted(unknown)}")
    if "pretraining" in raw:
        if {"config", "overrides"} & set(raw):
            raise StudyConfigError(f"{where}: a method with 'pretraining' reuses that method's pretraining; "
                                   "it takes no 'config' or 'overrides'")
        raw = {**raw, "config": ""}
    if "config" not in raw:
        raise StudyConfigError(f"{where} needs 'config' (e.g. configs/pretrain/{key}.yaml)")
    transfer = raw.get("transfer", "encoder")
    if transfer not in TRANSFERS:
        raise StudyConfigError(f"{where}.transfer must be one of {TRANSFERS}; got {transfer!r}")
    return MethodSpec(key=key, label=str(raw.get("label", key)), config=str(raw["config"]), transfer=transfer,
                      overrides=flatten_overrides(_mapping(raw.get("overrides"), f"{where}.overrides")),
                      finetune_overrides=flatten_overrides(_mapping(raw.get("finetune_overrides"),
                                                                    f"{where}.finetune_overrides")),
                      pretraining=str(raw["pretraining"]) if "pretraining" in raw else None)


def _variant(raw: Any, where: str, methods: tuple[str, ...], seeds: tuple[int, ...]) -> VariantSpec:
    raw = _mapping(raw, where)
    unknown = set(raw) - {"name", "train_phases", "vendors", "augmentation", "methods", "subsets", "seeds"}
    if unknown:
        raise StudyConfigError(f"{where}: unknown keys {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _KEY.match(name) or name == "default":
        raise StudyConfigError(f"{where}: a variant needs a lower-case 'name' other than 'default'; got {name!r}")
    changes = [key for key in ("train_phases", "vendors", "augmentation") if key in raw]
    if len(changes) != 1:
        raise StudyConfigError(f"{where} ({name}): a variant changes exactly one of train_phases, vendors, "
                               f"augmentation; got {changes or 'none'}")
    phases, vendors, augmentation = ("ED", "ES"), None, True
    if "train_phases" in raw:
        phases = raw["train_phases"]
        if not isinstance(phases, list) or not phases or any(p not in ("ED", "ES") for p in phases):
            raise StudyConfigError(f"{where} ({name}): train_phases must be a list of ED / ES; got {phases!r}")
        phases, kind = tuple(phases), "phase"
    elif "vendors" in raw:
        vendors = raw["vendors"]
        if vendors not in VENDOR_GROUPS:
            raise StudyConfigError(f"{where} ({name}): vendors must be one of {sorted(VENDOR_GROUPS)}; got {vendors!r}")
        kind = "vendor"
    else:
        augmentation = raw["augmentation"]
        if augmentation is not False:
            raise StudyConfigError(f"{where} ({name}): the augmentation variant sets augmentation: false")
        kind = "augmentation"
    chosen = tuple(raw.get("methods", methods))
    missing = [m for m in chosen if m not in methods]
    if missing:
        raise StudyConfigError(f"{where} ({name}): unknown methods {missing} (study methods: {list(methods)})")
    subsets = tuple(_subset(s, f"{where}.subsets") for s in raw.get("subsets", [ALL]))
    return VariantSpec(name=name, kind=kind, methods=chosen, subsets=subsets,
                       seeds=_seeds(raw["seeds"], f"{where}.seeds") if "seeds" in raw else seeds,
                       train_phases=phases, vendors=vendors, augmentation=augmentation)


def parse_study(raw: Mapping[str, Any], path: str | Path = "<study>") -> StudyConfig:
    """Validate a study mapping (the YAML's content) into a :class:`StudyConfig`."""
    path = Path(path)
    where = str(path)
    raw = _mapping(raw, where)
    known = {"name", "output_dir", "data", "seeds", "subsets", "eval_phases", "pretrain_seed", "common", "scratch",
             "finetune", "methods", "variants", "learning_rates",
             "subset_overrides"}
    unknown = set(raw) - known
    if unknown:
        raise StudyConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("name", "output_dir", "data", "scratch"):
        if key not in raw:
            raise StudyConfigError(f"{where}: missing '{key}'")
    data = _mapping(raw["data"], f"{where}: data")
    if not {"data_dir", "split"} <= set(data):
        raise StudyConfigError(f"{where}: data needs data_dir (prepared folder) and split (the full split YAML)")
    unknown = set(data) - {"data_dir", "split", "pretrain_split"}
    if unknown:
        raise StudyConfigError(f"{where}: data has unknown keys {sorted(unknown)}")
    learning_rates = _learning_rates(raw.get("learning_rates"), f"{where}: learning_rates")
    subset_overrides = {
        _subset(size, f"{where}: subset_overrides"): flatten_overrides(_mapping(value, f"{where}: subset_overrides"))
        for size, value in _mapping(raw.get("subset_overrides"), f"{where}: subset_overrides").items()}
    seeds = _seeds(raw.get("seeds", [0]), f"{where}: seeds")
    pretrain_seed = _seed(raw.get("pretrain_seed", 0), f"{where}: pretrain_seed")
    subsets = tuple(_subset(s, f"{where}: subsets") for s in raw.get("subsets", [ALL]))
    eval_phases = raw.get("eval_phases", ["ED", "ES"])
    if not isinstance(eval_phases, list) or not eval_phases or any(p not in ("ED", "ES") for p in eval_phases):
        raise StudyConfigError(f"{where}: eval_phases must be a list of ED / ES; got {eval_phases!r}")
    methods = {key: _method(key, spec, f"{where}: methods.{key}")
               for key, spec in _mapping(raw.get("methods"), f"{where}: methods").items()}
    for key, spec in methods.items():
        source = methods.get(spec.pretraining) if spec.pretraining else spec
        if source is None or source.pretraining:
            raise StudyConfigError(f"{where}: methods.{key}.pretraining must name a method of the study that "
                                   f"pretrains itself; got {spec.pretraining!r}")
    if methods and "finetune" not in raw:
        raise StudyConfigError(f"{where}: pretraining methods need a 'finetune' recipe")
    keys = (SCRATCH, *methods)
    default = VariantSpec(name="default", kind="default", methods=keys, subsets=subsets, seeds=seeds)
    variants_raw = raw.get("variants") or []
    if not isinstance(variants_raw, list):
        raise StudyConfigError(f"{where}: variants must be a list")
    variants = [default] + [_variant(v, f"{where}: variants[{i}]", keys, seeds) for i, v in enumerate(variants_raw)]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise StudyConfigError(f"{where}: repeated variant names {names}")
    name = str(raw["name"])
    if not _KEY.match(name.lower()):
        raise StudyConfigError(f"{where}: name must be a plain identifier; got {name!r}")
    return StudyConfig(
        name=name, path=path, output_dir=Path(str(raw["output_dir"])), data_dir=str(data["data_dir"]),
        split=str(data["split"]), eval_phases=tuple(eval_phases), pretrain_seed=pretrain_seed,
        common=flatten_overrides(_mapping(raw.get("common"), f"{where}: common")),
        scratch=_recipe(raw["scratch"], f"{where}: scratch"),
        finetune=_recipe(raw["finetune"], f"{where}: finetune") if "finetune" in raw else RecipeSpec(""),
        methods=methods, variants=tuple(variants),
        pretrain_split=str(data["pretrain_split"]) if data.get("pretrain_split") is not None else None,
        learning_rates=learning_rates, subset_overrides=subset_overrides)


def load_study(path: str | Path, output_dir: str | Path | None = None) -> StudyConfig:
    """Read and validate a study file; ``output_dir`` replaces the file's (e.g. for a scratch copy)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise StudyConfigError(f"{path}: cannot read the study file ({error})") from error
    if output_dir is not None and isinstance(raw, dict):
        raw["output_dir"] = str(output_dir)
    return parse_study(raw, path)
