"""``sspcmr splits default | subset | vendors | show``: subject split files in the reference YAML format
(docs/splits.md). Plain argparse; the libraries are imported when a command runs.
"""

from __future__ import annotations

import argparse


def _splits_default(args: argparse.Namespace) -> int:
    """``sspcmr splits default``: the reference's default split of a prepared data set."""
    from sspcmr.data.splits import default_split, write_split
    from sspcmr.data.store import PreparedDataset

    metadata = PreparedDataset(args.prepared).metadata_frames()
    first, _, last = args.mm2_test.partition("-")
    mm2_test = [f"{i:03d}" for i in range(int(first), int(last or first) + 1)]
    split = default_split(metadata, valid_fraction=args.valid_fraction, seed=args.seed,
                          per_vendor=args.test_per_vendor, mm2_test_ids=mm2_test,
                          remove_overlap=not args.keep_mm2_overlap)
    write_split(split, args.output)
    print(f"wrote {args.output}: {split.counts()}")
    return 0


def _splits_vendors(args: argparse.Namespace) -> int:
    """``sspcmr splits vendors``: keep the training and validation subjects of a vendor group."""
    from sspcmr.data.splits import read_split, vendor_subset, write_split
    from sspcmr.data.store import PreparedDataset

    metadata = PreparedDataset(args.prepared).metadata_frames()
    split = vendor_subset(read_split(args.base), metadata, args.group)
    write_split(split, args.output)
    print(f"wrote {args.output}: {split.counts()}")
    return 0


def _splits_subset(args: argparse.Namespace) -> int:
    """``sspcmr splits subset``: a labelled training subset of a split."""
    from sspcmr.data.splits import labelled_subset, read_split, write_split

    subset = labelled_subset(read_split(args.base), args.subjects, args.seed)
    write_split(subset, args.output)
    print(f"wrote {args.output}: {subset.counts()}")
    return 0


def _splits_show(args: argparse.Namespace) -> int:
    """``sspcmr splits show``: subject counts of split files."""
    from sspcmr.data.splits import read_split

    for path in args.files:
        print(f"{path}: {read_split(path).counts()}")
    return 0


def _add_subset(split_commands: argparse._SubParsersAction) -> None:
    subset = split_commands.add_parser(
        "subset",
        help="labelled training subset of a split (reference: legacy NumPy seed + shuffle; nested across sizes)",
    )
    subset.add_argument("--base", required=True, help="split YAML with train/valid/test")
    subset.add_argument("--subjects", type=int, required=True, help="training subjects to keep")
    subset.add_argument("--seed", type=int, default=0, help="subset seed (the reference used 0, 1, 2)")
    subset.add_argument("-o", "--output", required=True, help="output YAML")
    subset.set_defaults(handler=_splits_subset)


def _add_default(split_commands: argparse._SubParsersAction) -> None:
    default = split_commands.add_parser(
        "default", help="the reference's default split (test, train, valid) of a prepared data set")
    default.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare`")
    default.add_argument("--valid-fraction", type=float, default=0.2,
                         help="validation share of the development pool")
    default.add_argument("--seed", type=int, default=0, help="validation shuffle seed (reference: 0)")
    default.add_argument("--test-per-vendor", type=int, default=15, help="M&Ms test subjects per vendor (ref. 15)")
    default.add_argument("--mm2-test", default="281-360", help="M&Ms-2 test ID range (reference: 281-360)")
    default.add_argument("--keep-mm2-overlap", action="store_true",
                         help="keep M&Ms-2 NOR/HCM/LV subjects when both data sets are used (reference: removed)")
    default.add_argument("-o", "--output", required=True, help="output YAML")
    default.set_defaults(handler=_splits_default)


def _add_vendors(split_commands: argparse._SubParsersAction) -> None:
    vendors = split_commands.add_parser(
        "vendors", help="keep the training and validation subjects of a vendor group (A_B, C_D or a comma list "
                        "such as A,B,C,D); test unchanged")
    vendors.add_argument("--base", required=True, help="split YAML with train/valid/test")
    vendors.add_argument("--prepared", required=True, help="folder written by `sspcmr prepare` (vendor metadata)")
    vendors.add_argument("--group", required=True,
                         help="vendor group: A_B, C_D (the reference's) or a comma list of vendor letters (A,B,C,D)")
    vendors.add_argument("-o", "--output", required=True, help="output YAML")
    vendors.set_defaults(handler=_splits_vendors)


def add_splits_command(commands: argparse._SubParsersAction) -> None:
    """Register ``splits`` and its subcommands on the top-level parser's subcommands."""
    splits = commands.add_parser("splits", help="read, show and derive subject split files (reference YAML format)")
    split_commands = splits.add_subparsers(dest="split_command", required=True)
    _add_subset(split_commands)
    _add_default(split_commands)
    _add_vendors(split_commands)
    show = split_commands.add_parser("show", help="print subject counts per part and data set")
    show.add_argument("files", nargs="+", help="split YAML files")
    show.set_defaults(handler=_splits_show)
