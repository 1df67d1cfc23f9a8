"""Subject splits in the reference study's YAML format and the algorithms that generate them.

A split maps ``test`` / ``train`` / ``valid`` to data-set names (``mm1`` for M&Ms, ``mm2`` for
M&Ms-2) and lists of subject IDs (6-character M&Ms codes, zero-padded 3-digit M&Ms-2 numbers). A
file may hold only ``test``; then the development subjects are split here.

The algorithms reproduce the reference exactly (legacy NumPy seeding, pandas sampling):

* test set: per M&Ms vendor, ``DataFrame.sample(15, random_state=1234)`` on the metadata in its
  original row order (each vendor group with a fresh generator), plus M&Ms-2 subjects 281-360;
* when both data sets are used, M&Ms-2 subjects with pathology NOR, HCM or LV (possible overlap
  with M&Ms) leave the development pool *and* the test set;
* validation: the sorted ``"<dataset>-<ID>"`` strings of the development pool, shuffled after
  ``np.random.seed(0)``; the first ``round(0.2 N)`` are validation, the rest training;
* labelled subsets: the sorted training strings shuffled after ``np.random.seed(S)``, first N kept
  (so subsets of one seed are nested); validation and test unchanged;
* vendor groups: ``A_B`` (M&Ms A, B and M&Ms-2 Siemens, Philips) and ``C_D`` (M&Ms C, D and
  M&Ms-2 GE) filter training and validation; test unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .atomic import atomic_write_bytes

OVERLAP_PATHOLOGIES = ("NOR", "HCM", "LV")
VENDOR_GROUPS: dict[str, tuple[str, ...]] = {"A_B": ("A", "B"), "C_D": ("C", "D")}


class SplitError(ValueError):
    """A split file or request that cannot be honoured (the message names the file or value)."""


@dataclass
class Split:
    """Subject IDs per part and data set. ``train`` and ``valid`` are empty for a test-only split."""

    test: dict[str, list[str]] = field(default_factory=dict)
    train: dict[str, list[str]] = field(default_factory=dict)
    valid: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, list[str]]]:
        """The YAML structure: only non-empty parts, subject lists sorted."""
        out = {}
        for part in ("test", "train", "valid"):
            mapping = getattr(self, part)
            if mapping:
                out[part] = {ds: sorted(ids) for ds, ids in sorted(mapping.items())}
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of subjects per part and data set."""
        return {part: {ds: len(ids) for ds, ids in mapping.items()} for part, mapping in self.as_dict().items()}


def to_strings(mapping: dict[str, list[str]]) -> list[str]:
    """Sorted ``"<dataset>-<ID>"`` strings of a data-set -> IDs mapping."""
    return sorted(f"{ds}-{sid}" for ds, ids in mapping.items() for sid in ids)


def from_strings(strings: list[str]) -> dict[str, list[str]]:
    """Inverse of :func:`to_strings` (IDs sorted per data set)."""
    out: dict[str, list[str]] = {}
    for item in strings:
        ds, _, sid = item.partition("-")
        out.setdefault(ds, []).append(sid)
    return {ds: sorted(ids) for ds, ids in sorted(out.items())}


def read_split(path: str | Path) -> Split:
    """Read a split YAML file (reference format)."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SplitError(f"{path}: cannot read split file ({error})") from error
    if not isinstance(content, dict) or "test" not in content:
        raise SplitError(f"{path}: a split file is a mapping with at least a 'test' key")
    unknown = set(content) - {"test", "train", "valid"}
    if unknown:
        raise SplitError(f"{path}: unknown split keys {sorted(unknown)}")
    if ("train" in content) != ("valid" in content):
        raise SplitError(f"{path}: 'train' and 'valid' must be given together (or neither)")
    parts = {}
    for part, mapping in content.items():
        if not isinstance(mapping, dict):
            raise SplitError(f"{path}: '{part}' must map data-set names to subject lists")
        parts[part] = {str(ds): [str(s) for s in ids] for ds, ids in mapping.items()}
    return Split(**parts)


def write_split(split: Split, path: str | Path) -> Path:
    """Write a split as the reference does (alphabetical keys, every scalar double-quoted), atomically."""
    path = Path(path)
    text = yaml.dump(split.as_dict(), default_style='"')
    atomic_write_bytes(path, lambda tmp: tmp.write_text(text))
    return path


def sample_per_group(frame: pd.DataFrame, count: int, group: str, key: str, seed: int) -> list[str]:
    """``count`` values of ``key`` per ``group`` value, each group sampled with a fresh
    ``RandomState(seed)`` in the frame's row order (pandas ``DataFrame.sample`` semantics); sorted."""
    chosen: list[str] = []
    for _, rows in frame.groupby(group, sort=True, dropna=False):
        if len(rows) < count:
            raise SplitError(f"group {rows[group].iloc[0]!r} has {len(rows)} subjects, fewer than {count}")
        chosen.extend(rows.sample(count, random_state=seed)[key].astype(str))
    return sorted(chosen)


def default_test_subjects(metadata: dict[str, pd.DataFrame], per_vendor: int = 15, seed: int = 1234,
                          mm2_test_ids: list[str] | None = None) -> dict[str, list[str]]:
    """The reference test set: ``per_vendor`` M&Ms subjects per vendor plus M&Ms-2 281-360.

    Args:
        metadata: per data set, a frame with ``SubjectID``, ``Vendor`` and ``Pathology`` in the
            original CSV row order.
        per_vendor: M&Ms subjects drawn per vendor.
        seed: pandas sampling seed.
        mm2_test_ids: M&Ms-2 test IDs (default ``"281"`` to ``"360"``, those present in the metadata).
    """
    test: dict[str, list[str]] = {}
    if "mm1" in metadata:
        test["mm1"] = sample_per_group(metadata["mm1"], per_vendor, "Vendor", "SubjectID", seed)
    if "mm2" in metadata:
        wanted = mm2_test_ids or [f"{i:03d}" for i in range(281, 361)]
        present = set(metadata["mm2"]["SubjectID"].astype(str))
        test["mm2"] = sorted(s for s in wanted if s in present)
    return test


def development_split(metadata: dict[str, pd.DataFrame], test: dict[str, list[str]], valid_fraction: float = 0.2,
                      seed: int = 0, remove_overlap: bool = True) -> Split:
    """Split everything outside ``test`` into training and validation (reference algorithm).

    ``remove_overlap`` (reference: True) drops M&Ms-2 NOR/HCM/LV subjects when both data sets are used.
    """
    test = {ds: list(ids) for ds, ids in test.items()}
    pool: dict[str, list[str]] = {}
    for ds, frame in metadata.items():
        ids = frame["SubjectID"].astype(str)
        pool[ds] = [s for s in ids if s not in set(test.get(ds, []))]
    if remove_overlap and "mm1" in metadata and "mm2" in metadata:
        frame = metadata["mm2"]
        overlap = set(frame.loc[frame["Pathology"].isin(OVERLAP_PATHOLOGIES), "SubjectID"].astype(str))
        pool["mm2"] = [s for s in pool["mm2"] if s not in overlap]
        test["mm2"] = [s for s in test.get("mm2", []) if s not in overlap]
    strings = to_strings(pool)
    np.random.seed(seed)  # legacy global seeding, as the reference (reproduces its files exactly)
    np.random.shuffle(strings)
    n_valid = round(valid_fraction * len(strings))
    return Split(test=test, train=from_strings(strings[n_valid:]), valid=from_strings(strings[:n_valid]))


def labelled_subset(split: Split, subjects: int, seed: int) -> Split:
    """The first ``subjects`` training subjects after a legacy-seeded shuffle (nested across N)."""
    strings = to_strings(split.train)
    if not 0 < subjects <= len(strings):
        raise SplitError(f"subset size must be between 1 and {len(strings)} training subjects; got {subjects}")
    np.random.seed(seed)
    np.random.shuffle(strings)
    return Split(test=split.test, train=from_strings(strings[:subjects]), valid=split.valid)


def vendor_codes(group: str) -> tuple[str, ...]:
    """The vendor codes of a group: ``A_B`` / ``C_D`` (the reference's groups) or a comma list such as
    ``A,B,C,D`` (e.g. every vendor but the phantom's unseen vendor E)."""
    if group in VENDOR_GROUPS:
        return VENDOR_GROUPS[group]
    codes = tuple(code.strip() for code in group.split(","))
    if not all(len(code) == 1 and code.isalpha() and code.isupper() for code in codes) or len(set(codes)) != len(codes):
        raise SplitError(f"vendor group must be one of {sorted(VENDOR_GROUPS)} or a comma list of vendor letters "
                         f"such as A,B,C,D; got {group!r}")
    return codes


def vendor_subset(split: Split, metadata: dict[str, pd.DataFrame], group: str) -> Split:
    """Keep training and validation subjects of a vendor group (:func:`vendor_codes`); test unchanged."""
    vendors = vendor_codes(group)
    allowed = {ds: set(f.loc[f["Vendor"].isin(vendors), "SubjectID"].astype(str)) for ds, f in metadata.items()}

    def keep(mapping: dict[str, list[str]]) -> dict[str, list[str]]:
        return {ds: [s for s in ids if s in allowed.get(ds, set())] for ds, ids in mapping.items()}

    return Split(test=split.test, train=keep(split.train), valid=keep(split.valid))


def default_split(metadata: dict[str, pd.DataFrame], valid_fraction: float = 0.2, seed: int = 0,
                  per_vendor: int = 15, mm2_test_ids: list[str] | None = None, remove_overlap: bool = True) -> Split:
    """The reference's default split from metadata alone (``setup_cine`` then the seeded valid split).

    Args:
        metadata: per data set, ``SubjectID`` / ``Vendor`` / ``Pathology`` in original CSV order
            (``PreparedDataset.metadata_frames()``).
        valid_fraction: validation share of the development pool (reference 0.2).
        seed: validation shuffle seed (reference 0).
        per_vendor: M&Ms test subjects per vendor (reference 15).
        mm2_test_ids: M&Ms-2 test IDs (reference 281-360).
        remove_overlap: drop M&Ms-2 NOR/HCM/LV subjects when both data sets are used (reference True).
    """
    test = default_test_subjects(metadata, per_vendor=per_vendor, mm2_test_ids=mm2_test_ids)
    return development_split(metadata, test, valid_fraction=valid_fraction, seed=seed, remove_overlap=remove_overlap)
