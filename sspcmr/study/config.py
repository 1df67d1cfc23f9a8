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
    checkpoint: last                         # optional: last (default) | best | {pretraining: .., evaluation: ..}
                                             # (a method may have its own: methods.<key>.checkpoint)

A file may build on another: ``base: paper-table1.yaml`` (next to the file, or a shipped study's name) reads
that file first and merges this one into it: mappings key by key, any other value (lists, scalars) replaced.
Such a file names its own ``name`` and ``output_dir``, so two studies never share run folders.

Overrides are LightningCLI arguments without the leading ``--``, as a flat mapping of dotted keys
(``model.init_args.lr: 0.005``) or nested mappings; values are passed as JSON. Relative paths are taken
from the working directory, like every other sspcmr config. A ``config`` that is no file there but names a
shipped config (``segmentation/baseline``, or ``configs/segmentation/baseline.yaml`` outside a clone) is that
file (:func:`~sspcmr.shipped_configs.resolve_config`); so is the study file itself in :func:`load_study`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sspcmr.data.splits import VENDOR_GROUPS
from sspcmr.shipped_configs import resolve_config
from sspcmr.study.spec import (
    ALL,
    CHECKPOINTS,
    MAX_SEED,
    SCRATCH,
    TRANSFERS,
    CheckpointChoice,
    MethodSpec,
    RecipeSpec,
    StudyConfig,
    StudyConfigError,
    VariantSpec,
    flatten_overrides,
)

_KEY = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


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
    overrides = flatten_overrides(_mapping(raw.get("overrides"), f"{where}.overrides"))
    return RecipeSpec(resolve_config(str(raw["config"])), overrides)


def _checkpoint(value: Any, where: str, default: CheckpointChoice) -> CheckpointChoice:
    """``last`` / ``best`` (both choices), or a mapping of ``pretraining`` and / or ``evaluation`` (the others
    from ``default``)."""
    chosen = {"pretraining": value, "evaluation": value} if isinstance(value, str) else value
    if not isinstance(chosen, Mapping) or not chosen or set(chosen) - {"pretraining", "evaluation"} \
            or any(chosen[key] not in CHECKPOINTS for key in chosen):
        raise StudyConfigError(f"{where} must be one of {list(CHECKPOINTS)} or a mapping of pretraining and / or "
                               f"evaluation to one of them; got {value!r}")
    return CheckpointChoice(**{"pretraining": default.pretraining, "evaluation": default.evaluation, **chosen})


def _method(key: str, raw: Any, where: str, study_checkpoint: CheckpointChoice) -> MethodSpec:
    raw = _mapping(raw, where)
    if not _KEY.match(key) or key == SCRATCH:
        raise StudyConfigError(f"{where}: method keys are lower-case names other than 'scratch'; got {key!r}")
    unknown = set(raw) - {"label", "config", "transfer", "overrides", "finetune_overrides", "pretraining",
                          "checkpoint"}
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
    config = resolve_config(str(raw["config"]))  # "" for a method fine-tuning another's pretraining
    return MethodSpec(key=key, label=str(raw.get("label", key)), config=config, transfer=transfer,
                      overrides=flatten_overrides(_mapping(raw.get("overrides"), f"{where}.overrides")),
                      finetune_overrides=flatten_overrides(_mapping(raw.get("finetune_overrides"),
                                                                    f"{where}.finetune_overrides")),
                      pretraining=str(raw["pretraining"]) if "pretraining" in raw else None,
                      checkpoint=_checkpoint(raw["checkpoint"], f"{where}.checkpoint", study_checkpoint)
                      if raw.get("checkpoint") is not None else None)


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


_KNOWN = {"name", "output_dir", "data", "seeds", "subsets", "eval_phases", "pretrain_seed", "common", "scratch",
          "finetune", "methods", "variants", "learning_rates", "subset_overrides", "checkpoint", "base"}


def _data(raw: Mapping[str, Any], where: str) -> dict:
    """The ``data`` entry: ``data_dir`` and ``split``, optionally ``pretrain_split``."""
    data = _mapping(raw["data"], f"{where}: data")
    if not {"data_dir", "split"} <= set(data):
        raise StudyConfigError(f"{where}: data needs data_dir (prepared folder) and split (the full split YAML)")
    unknown = set(data) - {"data_dir", "split", "pretrain_split"}
    if unknown:
        raise StudyConfigError(f"{where}: data has unknown keys {sorted(unknown)}")
    return data


def _methods(raw: Mapping[str, Any], where: str, checkpoint: CheckpointChoice) -> dict[str, MethodSpec]:
    """The pretraining methods; one fine-tuning another's pretraining must name a method that pretrains."""
    methods = {key: _method(key, spec, f"{where}: methods.{key}", checkpoint)
               for key, spec in _mapping(raw.get("methods"), f"{where}: methods").items()}
    for key, spec in methods.items():
        source = methods.get(spec.pretraining) if spec.pretraining else spec
        if source is None or source.pretraining:
            raise StudyConfigError(f"{where}: methods.{key}.pretraining must name a method of the study that "
                                   f"pretrains itself; got {spec.pretraining!r}")
    if methods and "finetune" not in raw:
        raise StudyConfigError(f"{where}: pretraining methods need a 'finetune' recipe")
    return methods


def _variants(raw: Mapping[str, Any], where: str, default: VariantSpec) -> tuple[VariantSpec, ...]:
    """The default grid followed by the file's generalisation variants, with unique names."""
    variants_raw = raw.get("variants") or []
    if not isinstance(variants_raw, list):
        raise StudyConfigError(f"{where}: variants must be a list")
    variants = [default] + [_variant(v, f"{where}: variants[{i}]", default.methods, default.seeds)
                            for i, v in enumerate(variants_raw)]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise StudyConfigError(f"{where}: repeated variant names {names}")
    return tuple(variants)


def parse_study(raw: Mapping[str, Any], path: str | Path = "<study>") -> StudyConfig:
    """Validate a study mapping (the YAML's content) into a :class:`StudyConfig`."""
    path = Path(path)
    where = str(path)
    raw = _mapping(raw, where)
    merged = _with_bases(raw, path) if raw.get("base") is not None else None
    raw = merged or raw
    unknown = set(raw) - _KNOWN
    if unknown:
        raise StudyConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("name", "output_dir", "data", "scratch"):
        if key not in raw:
            raise StudyConfigError(f"{where}: missing '{key}'")
    data = _data(raw, where)
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
    checkpoint = CheckpointChoice()
    if raw.get("checkpoint") is not None:
        checkpoint = _checkpoint(raw["checkpoint"], f"{where}: checkpoint", checkpoint)
    methods = _methods(raw, where, checkpoint)
    default = VariantSpec(name="default", kind="default", methods=(SCRATCH, *methods), subsets=subsets, seeds=seeds)
    variants = _variants(raw, where, default)
    name = str(raw["name"])
    if not _KEY.match(name.lower()):
        raise StudyConfigError(f"{where}: name must be a plain identifier; got {name!r}")
    return StudyConfig(
        name=name, path=path, output_dir=Path(str(raw["output_dir"])), data_dir=str(data["data_dir"]),
        split=str(data["split"]), eval_phases=tuple(eval_phases), pretrain_seed=pretrain_seed,
        common=flatten_overrides(_mapping(raw.get("common"), f"{where}: common")),
        scratch=_recipe(raw["scratch"], f"{where}: scratch"),
        finetune=_recipe(raw["finetune"], f"{where}: finetune") if "finetune" in raw else RecipeSpec(""),
        methods=methods, variants=variants,
        pretrain_split=str(data["pretrain_split"]) if data.get("pretrain_split") is not None else None,
        learning_rates=learning_rates, subset_overrides=subset_overrides, checkpoint=checkpoint, merged=merged)


def _read(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise StudyConfigError(f"{path}: cannot read the study file ({error})") from error
    return _mapping(raw, str(path))


def _merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict:
    """``own`` over ``base``: mappings merged key by key (a new key comes after the base's, so a dotted override
    given over a nested one still wins when both are flattened), anything else replaced."""
    out = dict(base)
    for key, value in own.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) \
            else value
    return out


def _with_bases(raw: Mapping[str, Any], path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """``raw`` merged into its ``base`` (itself merged into its own base, and so on), without the ``base`` key."""
    where = f"{path}: base"
    missing = [key for key in ("name", "output_dir") if key not in raw]
    if missing:
        raise StudyConfigError(f"{where}: a study built on another names its own {' and '.join(missing)} "
                               "(its runs must not share the base study's folders)")
    beside = path.parent / str(raw["base"])
    source = beside.resolve() if beside.is_file() else Path(resolve_config(str(raw["base"]))).resolve()
    if not source.is_file():
        raise StudyConfigError(f"{where}: {raw['base']} is no file beside {path.name}, in the working folder or "
                               "among the shipped studies (`sspcmr configs list --kind study`)")
    if source in seen or source == path.resolve():
        raise StudyConfigError(f"{where}: {raw['base']} is built on this file again (a cycle of bases)")
    base = _read(source)
    if base.get("base") is not None:
        base = _with_bases(base, source, (*seen, path.resolve()))
    return _merge(base, {key: value for key, value in raw.items() if key != "base"})


def load_study(path: str | Path, output_dir: str | Path | None = None) -> StudyConfig:
    """Read and validate a study file (or a shipped one by name: ``study/smoke``); ``output_dir`` replaces the
    file's (e.g. for a scratch copy)."""
    path = Path(resolve_config(str(path)))
    raw = _read(path)
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)
    return parse_study(raw, path)
