"""``sspcmr configs list | show | copy``: the YAML configs shipped with sspcmr, reachable without a clone of the
repository (:mod:`sspcmr.shipped_configs`). ``sspcmr fit --config NAME`` and study files take the same names.
Plain argparse and PyYAML: nothing here imports torch.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from sspcmr.links import docs_page

_LINE_WIDTH = 110  # a listing line: name, kind and as much of the summary as fits


def _kind(path: Path) -> str:
    """``fit`` for a LightningCLI config (a top-level ``model``), ``study`` for a study file."""
    import yaml

    content = yaml.safe_load(path.read_text())
    if isinstance(content, dict) and "model" in content:
        return "fit"
    # a study file declares its scratch recipe, or builds on another study file that does (``base:``)
    return "study" if isinstance(content, dict) and ("scratch" in content or "base" in content) else "other"


def _summary(path: Path, width: int) -> str:
    """The first line of the file's header comment, shortened to ``width`` characters."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            return ""
        text = line.lstrip("#").strip()
        if text:
            return text if len(text) <= width else text[:width - 3] + "..."
    return ""


def _list(args: argparse.Namespace) -> int:
    """``sspcmr configs list``: every shipped config's name, kind and first comment line."""
    from sspcmr.shipped_configs import config_files, configs_root

    rows = [(name, path, _kind(path)) for name, path in config_files().items()]
    rows = [row for row in rows if not args.kind or row[2] == args.kind]
    width = max((len(name) for name, _, _ in rows), default=4)
    for name, path, kind in rows:
        print(f"{name:<{width}}  {kind:<5}  {_summary(path, max(30, _LINE_WIDTH - width - 9))}")
    print(f"\n{len(rows)} configs in {configs_root()}; fit: `sspcmr fit --config NAME`, study: "
          "`sspcmr study --config NAME`")
    return 0


def _show(args: argparse.Namespace) -> int:
    """``sspcmr configs show NAME``: print a shipped config."""
    from sspcmr.shipped_configs import packaged_config

    print(packaged_config(args.name).read_text(), end="")
    return 0


def _copy(args: argparse.Namespace) -> int:
    """``sspcmr configs copy NAME DEST``: copy a shipped config to a file or into a folder, to edit it."""
    from sspcmr.data.errors import DataError
    from sspcmr.shipped_configs import packaged_config

    source = packaged_config(args.name)
    dest = Path(args.dest)
    if dest.is_dir() or args.dest.endswith(("/", "\\")):
        dest = dest / source.name
    if dest.exists() and not args.force:
        raise DataError(f"{dest} exists; --force replaces it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    print(f"wrote {dest} (the shipped {args.name})")
    return 0


def add_configs_command(commands: argparse._SubParsersAction) -> None:
    """Register ``configs`` (with ``list``, ``show`` and ``copy``) on the top-level parser's subcommands."""
    configs = commands.add_parser(
        "configs", help="list, print or copy the shipped YAML configs (fit configs and study files)",
        description="The configs shipped with sspcmr. NAME is a path below the configs folder, with or without "
        ".yaml (pretrain/mim, study/smoke.yaml); `sspcmr fit --config NAME` and `sspcmr study --config NAME` take "
        f"it too. Details: {docs_page('cli.md#shipped-configs')}")
    actions = configs.add_subparsers(dest="configs_command", required=True)
    listing = actions.add_parser("list", help="names, kinds (fit config or study file) and first comment lines")
    listing.add_argument("--kind", choices=["fit", "study"], help="only configs of this kind")
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="print a shipped config")
    show.add_argument("name", metavar="NAME", help="e.g. pretrain/mim or segmentation/baseline.yaml")
    show.set_defaults(handler=_show)
    copy = actions.add_parser("copy", help="copy a shipped config to edit it (then --config points at the copy)")
    copy.add_argument("name", metavar="NAME", help="e.g. demo/mim")
    copy.add_argument("dest", metavar="DEST", help="a file, or a folder (existing, or ending in /) to copy into")
    copy.add_argument("--force", action="store_true", help="replace DEST if it exists (default: refuse)")
    copy.set_defaults(handler=_copy)
