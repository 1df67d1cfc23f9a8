"""The YAML configs shipped with sspcmr, addressable by name without a clone of the repository.

The repository's top-level ``configs/`` folder is the one source of these files; the wheel carries a copy as
``sspcmr/configs/`` (``setup.py`` maps one onto the other). A *name* is a path below that folder, with or
without its suffix and with or without a leading ``configs/``: ``pretrain/mim``, ``pretrain/mim.yaml`` and
``configs/pretrain/mim.yaml`` all name the same file. :func:`resolve_config` is what ``sspcmr fit --config``
and study files use: an existing file always wins, so a command that worked in a clone works unchanged.

Nothing here imports torch: ``sspcmr configs`` starts instantly.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from sspcmr.data.errors import DataError

SUFFIXES = (".yaml", ".yml")
_PACKAGE = Path(__file__).resolve().parent
# The LightningCLI options that take a config file (jsonargparse's ActionConfigFile).
_CONFIG_OPTIONS = ("--config", "-c")


def configs_root() -> Path:
    """The folder of the shipped configs.

    ``sspcmr/configs`` inside an installed wheel; in a source checkout (an editable install, or the package on
    ``PYTHONPATH``) the repository's ``configs/`` next to the package: setuptools' editable installs do not map
    a data folder into a package, and there the repository's folder is the source of truth anyway.
    """
    installed, checkout = _PACKAGE / "configs", _PACKAGE.parent / "configs"
    if installed.is_dir():
        return installed
    if checkout.is_dir() and (_PACKAGE.parent / "pyproject.toml").is_file():
        return checkout
    raise DataError("this installation of sspcmr has no shipped configs (sspcmr/configs is missing): "
                    "reinstall it from a wheel or the source tree")


def config_files() -> dict[str, Path]:
    """Every shipped config by its name without suffix (``pretrain/mim``), in name order."""
    root = configs_root()
    found = {path.relative_to(root).with_suffix("").as_posix(): path
             for path in root.rglob("*") if path.suffix in SUFFIXES and path.is_file()}
    return dict(sorted(found.items()))


def config_names() -> list[str]:
    """The names of the shipped configs (``pretrain/mim``, ``study/smoke``, ...), sorted."""
    return list(config_files())


def _name_of(value: str) -> str:
    """``value`` as a config name: forward slashes, no leading ``./`` or ``configs/``, no YAML suffix."""
    parts = PurePosixPath(str(value).replace("\\", "/")).parts
    if parts[:1] == ("configs",):
        parts = parts[1:]
    name = "/".join(parts)
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def find_config(name: str) -> Path | None:
    """The shipped file that ``name`` names, or None (only names from :func:`config_names` ever match, so
    ``..`` cannot reach outside the folder)."""
    return config_files().get(_name_of(name)) if name else None


def packaged_config(name: str) -> Path:
    """The shipped file that ``name`` names; a :class:`DataError` naming the closest names otherwise."""
    path = find_config(name)
    if path is None:
        close = difflib.get_close_matches(_name_of(name), config_names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"no shipped config named {name!r}{hint} (`sspcmr configs list` shows them all)")
    return path


def _is_file(value: str) -> bool:
    """Whether ``value`` names an existing file; False for text that cannot be a path at all (jsonargparse
    also takes a config's YAML text itself: too long for a file name, or with a NUL)."""
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


def resolve_config(value: str) -> str:
    """The config file to read for ``value`` (a ``--config`` argument or a study file's ``config``).

    An existing file is returned unchanged; otherwise a shipped config's name becomes that file's path;
    anything else is returned unchanged, so the reader reports the missing file as before.
    """
    if not value or _is_file(value):
        return value
    path = find_config(value)
    return value if path is None else str(path)


def resolve_config_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of every ``--config`` / ``-c`` option (``--config X`` or ``--config=X``) passed
    through :func:`resolve_config`; everything else unchanged."""
    resolved = list(argv)
    for i, arg in enumerate(resolved):
        option, equals, value = arg.partition("=")
        if equals and option in _CONFIG_OPTIONS:
            resolved[i] = f"{option}={resolve_config(value)}"
        elif arg in _CONFIG_OPTIONS and i + 1 < len(resolved):
            resolved[i + 1] = resolve_config(resolved[i + 1])
    return resolved
