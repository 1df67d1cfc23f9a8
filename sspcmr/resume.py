"""``--ckpt_path last``: the ``last.ckpt`` of *this* experiment, never of another one.

Lightning looks for "last" only in the new run's own (empty) folder, so sspcmr resolves it before the
trainer is built, from the run's configuration:

1. a ``ModelCheckpoint`` callback with an explicit ``dirpath``: ``<dirpath>/last.ckpt``;
2. a logger with an explicit ``version`` (the demo configs use ``version: demo``):
   ``<save_dir>/<name>/<version>/checkpoints/last.ckpt``;
3. a logger with automatic versions: among ``<save_dir>/<name>/version_*``, the newest whose saved
   ``config.yaml`` has the same ``model`` and ``data`` sections as this command (so resuming experiment A
   never restores experiment B logged under the same name); the resumed run continues in that folder;
4. no logger: ``<default_root_dir>/checkpoints/last.ckpt``.

When nothing matches, the command stops with a message instead of silently starting from scratch; to
start fresh, leave ``--ckpt_path`` out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sspcmr.data.errors import DataError

# What makes two runs the same experiment: the network and method, and the data they see. Trainer
# settings such as max_epochs may change between a run and its resumption.
SAME_EXPERIMENT = ("model", "data")
LAST = "last.ckpt"


def _get(namespace: Any, key: str, default: Any = None) -> Any:
    if namespace is None:
        return default
    getter = getattr(namespace, "get", None)
    return getter(key, default) if getter else getattr(namespace, key, default)


def _class_name(item: Any) -> str:
    """``ModelCheckpoint`` for a configured callback (``class_path``) or an instantiated one."""
    path = _get(item, "class_path")
    return str(path).rsplit(".", 1)[-1] if path else type(item).__name__


def _checkpoint_dirpaths(trainer: Any) -> list[Path]:
    callbacks = _get(trainer, "callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    found = []
    for callback in callbacks:
        if _class_name(callback) == "ModelCheckpoint":
            dirpath = _get(_get(callback, "init_args"), "dirpath") or getattr(callback, "dirpath", None)
            if dirpath:
                found.append(Path(dirpath))
    return found


def _same_experiment(saved_config: Path, current: dict) -> bool:
    try:
        saved = yaml.safe_load(saved_config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    return all(saved.get(key) == current.get(key) for key in SAME_EXPERIMENT)


def find_last_checkpoint(config: Any, current: dict) -> tuple[Path, str | None]:
    """The ``last.ckpt`` to resume, and the logger version to continue in (None: keep the configured one).

    Args:
        config: the subcommand's parsed configuration (jsonargparse namespace; ``trainer`` inside).
        current: the same configuration as plain data (its YAML dump), compared with saved ``config.yaml``.

    Raises:
        DataError: no checkpoint of this experiment exists.
    """
    trainer = _get(config, "trainer")
    for dirpath in _checkpoint_dirpaths(trainer):
        if (dirpath / LAST).is_file():
            return dirpath / LAST, None
        raise DataError(f"--ckpt_path last: no {LAST} in the checkpoint folder {dirpath}; leave --ckpt_path out "
                        "to start fresh")
    logger = _get(trainer, "logger")
    init = _get(logger, "init_args")
    if logger in (None, False) or init is None:
        root = Path(_get(trainer, "default_root_dir") or ".")
        path = root / "checkpoints" / LAST
        if path.is_file():
            return path, None
        raise DataError(f"--ckpt_path last: no {path} (this run has no logger folder); leave --ckpt_path out "
                        "to start fresh")
    experiment = Path(_get(init, "save_dir") or ".") / str(_get(init, "name") or "lightning_logs")
    version = _get(init, "version")
    if version not in (None, ""):
        folder = experiment / (f"version_{version}" if isinstance(version, int) else str(version))
        path = folder / "checkpoints" / LAST
        if path.is_file():
            return path, None
        raise DataError(f"--ckpt_path last: {path} does not exist (logger version {version!r}); leave --ckpt_path "
                        "out to start fresh")
    candidates = [folder for folder in experiment.glob("*") if (folder / "checkpoints" / LAST).is_file()]
    matching = [folder for folder in candidates if _same_experiment(folder / "config.yaml", current)]
    if not matching:
        seen = f"{len(candidates)} run(s) there have a {LAST}, none with the same model and data config" \
            if candidates else f"no run there has a {LAST}"
        raise DataError(f"--ckpt_path last: no earlier run of this experiment under {experiment} ({seen}); give "
                        "the file with --ckpt_path PATH, or leave --ckpt_path out to start fresh")
    folder = max(matching, key=lambda f: (f / "checkpoints" / LAST).stat().st_mtime_ns)
    return folder / "checkpoints" / LAST, folder.name
