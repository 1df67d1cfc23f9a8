"""Finding the subjects of the M&Ms and M&Ms-2 downloads and their metadata rows.

A raw folder holds ``MnM/`` (M&Ms) and/or ``MnM2/`` (M&Ms-2), directly or under
``original_data/`` (the reference's layout):

* ``MnM/<metadata>.csv`` (the official ``211230_M&Ms_Dataset_information_diagnosis_opendataset.csv``,
  with its unnamed index column) and one folder per subject containing ``<CODE>_sa.nii.gz`` and
  ``<CODE>_sa_gt.nii.gz``. Subject folders are found anywhere below ``MnM/``, so both the
  reference's flattened ``dataset/`` folder and the official ``Training/Labeled``,
  ``Training/Unlabeled``, ``Validation``, ``Testing`` folders work as downloaded.
* ``MnM2/dataset_information.csv`` and ``MnM2/dataset/<NNN>/<NNN>_SA_{CINE,ED,ES}[_gt].nii.gz``
  (long-axis files are recorded for their geometry only).

Folders and files are found through symbolic links (a ``dataset`` folder or subject folders linked
from elsewhere), each real folder once, so a link loop is harmless. Hidden entries (names starting
with ``.``, such as macOS ``._<name>`` resource forks and ``.DS_Store``) are ignored.

Subject codes become folder names of the prepared data set, so a metadata row is accepted only
when its code is a plain name (:data:`SUBJECT_CODE`): a code such as ``..`` or ``a/b`` is a problem
of that row and never reaches the file system.

Metadata is normalised to the reference's reformatted columns: ``SubjectID``, ``Pathology``,
``Vendor`` (A-D; M&Ms-2 Siemens -> A, Philips -> B, GE -> C), ``VendorName``, plus every other
column passed through.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError, MachineError, is_machine_failure

DATASET_FOLDERS = {"mm1": "MnM", "mm2": "MnM2"}
CLI_NAMES = {"mnms": "mm1", "mnms2": "mm2"}
MNMS_CSV = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
MNMS2_CSV = "dataset_information.csv"
MNMS2_VENDORS = {
    "SIEMENS": ("Siemens", "A"),
    "PHILIPS MEDICAL SYSTEMS": ("Philips", "B"),
    "GE MEDICAL SYSTEMS": ("GE", "C"),
}
# A subject code names a folder of the prepared data set: letters, digits, ``_`` and ``-`` only (no
# ``.``, so never ``.``/``..`` or hidden; no path separator), at most 64 characters. Real M&Ms codes
# are 6 letters and digits, M&Ms-2 codes 3 digits.
SUBJECT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class RawSubject:
    """One subject as found in the raw folder.

    Attributes:
        dataset: ``mm1`` or ``mm2``.
        subject_id: 6-character M&Ms code or 3-digit M&Ms-2 number.
        row: its metadata row (normalised columns, JSON-friendly values).
        files: role -> path (``cine``, ``labels`` for M&Ms; ``cine``, ``ed``, ``es``, ``ed_gt``, ``es_gt``
            and optional long-axis roles for M&Ms-2).
        csv_order: position of the row in the original CSV (pandas sampling depends on it).
        csv: the metadata CSV the row comes from (named in errors about its values).
    """

    dataset: str
    subject_id: str
    row: dict
    files: dict[str, Path] = field(default_factory=dict)
    csv_order: int = 0
    csv: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.subject_id}"


def dataset_names(datasets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The selected data sets as ``mm1`` / ``mm2`` (``mnms`` / ``mnms2`` accepted too), in order, each once.

    Raises:
        DataError: none selected, or one that is neither.
    """
    names = tuple(dict.fromkeys(CLI_NAMES.get(d, d) for d in datasets))
    if not names or any(d not in DATASET_FOLDERS for d in names):
        raise DataError(f"datasets must be among mnms, mnms2; got {list(datasets)}")
    return names


def dataset_root(raw: Path, dataset: str) -> Path | None:
    """The ``MnM`` / ``MnM2`` folder of a raw folder (also under ``original_data/``), or None."""
    for base in (raw, raw / "original_data"):
        folder = base / DATASET_FOLDERS[dataset]
        if folder.is_dir():
            return folder
    return None


def find_subjects(raw: Path, datasets: tuple[str, ...]) -> tuple[list[RawSubject], list[DataError]]:
    """All subjects of the selected data sets, and the metadata problems found on the way.

    A CSV row without a subject folder and a subject folder without a CSV row are problems of
    that subject (so ``--skip-invalid`` can leave just those out).
    """
    subjects: list[RawSubject] = []
    problems: list[DataError] = []
    if not raw.is_dir():
        raise DataError(f"raw data folder {raw} does not exist")
    for dataset in datasets:
        root = dataset_root(raw, dataset)
        if root is None:
            raise DataError(f"no {DATASET_FOLDERS[dataset]}/ folder under {raw} (needed for {dataset})")
        finder = _find_mnms if dataset == "mm1" else _find_mnms2
        found, issues = finder(root)
        subjects += found
        problems += issues
    return subjects, problems


def _shown(code: str) -> str:
    """A code as it appears in messages: itself when plain, else quoted and shortened (one line)."""
    return code if SUBJECT_CODE.fullmatch(code) else repr(code[:80])


def _walk_files(root: Path) -> list[Path]:
    """Every non-hidden file below ``root`` (sorted), following symbolic links to folders and files.

    Each real folder is listed once (by its resolved path), so a link to an ancestor folder is not
    followed again. A folder the machine cannot list is a :class:`MachineError`, not a missing subject.
    """
    def failed(error: OSError) -> None:
        if is_machine_failure(error):
            raise MachineError("listing", error.filename or root, error)

    files, visited = [], set()
    for top, folders, names in os.walk(root, followlinks=True, onerror=failed):
        real = os.path.realpath(top)
        if real in visited:
            folders[:] = []
            continue
        visited.add(real)
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        files += [Path(top, name) for name in names if not name.startswith(".")]
    return sorted(files)


def _read_csv(path: Path, dataset: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read metadata CSV ({error})", dataset, path) from None


def _metadata_csv(root: Path, preferred: str) -> Path:
    path = root / preferred
    if path.is_file():
        return path
    candidates = sorted(p for p in root.glob("*.csv") if not p.name.startswith("."))
    if len(candidates) != 1:
        raise DataError(f"expected the metadata CSV {preferred} (or exactly one .csv file) in {root}")
    return candidates[0]


def _find_mnms(root: Path) -> tuple[list[RawSubject], list[DataError]]:
    csv = _metadata_csv(root, MNMS_CSV)
    frame = _read_csv(csv, "mm1")
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed") or c == ""])
    required = {"External code", "Vendor", "ED", "ES", "Pathology"}
    if missing := required - set(frame.columns):
        raise DataError(f"metadata CSV lacks columns {sorted(missing)}", "mm1", csv)
    frame = frame.rename(columns={"External code": "SubjectID"})
    frame = frame[frame["SubjectID"].str.strip() != ""]  # trailing empty rows
    folders: dict[str, Path] = {}
    files = _walk_files(root)
    images = [f for f in files if f.name.endswith("_sa.nii.gz")] + [f for f in files if f.name.endswith("_sa.nii")]
    for image in images:
        code = image.name.split("_sa.nii")[0]
        if code in folders and folders[code] != image.parent:
            raise DataError(f"subject folder found twice: {folders[code]} and {image.parent}", f"mm1 {_shown(code)}")
        folders[code] = image.parent
    return _match_rows(frame, folders, "mm1", csv, _mnms_files)


def _mnms_files(folder: Path, code: str) -> dict[str, Path]:
    suffix = ".nii.gz" if (folder / f"{code}_sa.nii.gz").exists() else ".nii"
    return {"cine": folder / f"{code}_sa{suffix}", "labels": folder / f"{code}_sa_gt{suffix}"}


def _find_mnms2(root: Path) -> tuple[list[RawSubject], list[DataError]]:
    csv = _metadata_csv(root, MNMS2_CSV)
    frame = _read_csv(csv, "mm2")
    required = {"SUBJECT_CODE", "DISEASE", "VENDOR"}
    if missing := required - set(frame.columns):
        raise DataError(f"metadata CSV lacks columns {sorted(missing)}", "mm2", csv)
    frame = frame[frame["SUBJECT_CODE"].str.strip() != ""].copy()  # trailing empty rows (a reference crash)
    try:
        frame["SUBJECT_CODE"] = [f"{int(float(v)):03d}" for v in frame["SUBJECT_CODE"]]
    except (ValueError, OverflowError) as error:
        raise DataError(f"SUBJECT_CODE must be integers ({error})", "mm2", csv) from None
    names, codes = [], []
    for vendor in frame["VENDOR"]:
        mapped = MNMS2_VENDORS.get(vendor.strip().upper())
        if mapped is None:
            raise DataError(f"unknown VENDOR {vendor!r} (expected {sorted(MNMS2_VENDORS)})", "mm2", csv)
        names.append(mapped[0])
        codes.append(mapped[1])
    frame = frame.rename(columns={"SUBJECT_CODE": "SubjectID", "DISEASE": "Pathology", "SCANNER": "Scanner",
                                  "FIELD": "Field"}).drop(columns=["VENDOR"])
    frame["VendorName"], frame["Vendor"] = names, codes
    folders = {}
    base = root / "dataset" if (root / "dataset").is_dir() else root
    for image in _walk_files(base):
        if image.name.endswith(("_SA_CINE.nii.gz", "_SA_CINE.nii")):
            folders[image.name.split("_SA_CINE")[0]] = image.parent
    return _match_rows(frame, folders, "mm2", csv, _mnms2_files)


def _mnms2_files(folder: Path, code: str) -> dict[str, Path]:
    suffix = ".nii.gz" if (folder / f"{code}_SA_CINE.nii.gz").exists() else ".nii"
    files = {role: folder / f"{code}_SA_{part}{suffix}" for role, part in
             (("cine", "CINE"), ("ed", "ED"), ("es", "ES"), ("ed_gt", "ED_gt"), ("es_gt", "ES_gt"))}
    # Long-axis cines are recorded for their geometry (the orientation pretext task needs it).
    for role, name in (("la_4ch", f"{code}_LA_CINE{suffix}"), ("la_2ch", f"{code}_LA2CH_CINE_sspcmr{suffix}")):
        if (folder / name).exists():
            files[role] = folder / name
    return files


def _match_rows(frame: pd.DataFrame, folders: dict[str, Path], dataset: str, csv: Path,
                files_of) -> tuple[list[RawSubject], list[DataError]]:
    subjects, problems = [], []
    seen: set[str] = set()
    for order, row in enumerate(frame.to_dict("records")):
        code = str(row["SubjectID"]).strip()
        if code in seen:
            problems.append(DataError("subject listed twice in the metadata CSV", f"{dataset} {_shown(code)}", csv))
            continue
        seen.add(code)
        if not SUBJECT_CODE.fullmatch(code):  # it would become a folder name: never let it near the file system
            problems.append(DataError(f"subject code {code[:80]!r} is not a plain name (letters, digits, _ and - "
                                      f"only, at most 64)", f"{dataset} {_shown(code)}", csv))
            continue
        if code not in folders:
            problems.append(DataError("CSV row without a subject folder", f"{dataset} {code}", csv))
            continue
        row = {"SubjectID": code, **{k: v for k, v in row.items() if k != "SubjectID"}}
        subjects.append(RawSubject(dataset, code, row, files_of(folders[code], code), order, csv))
    for code in sorted(set(folders) - seen):
        problems.append(DataError(f"subject folder without a row in {csv.name}", f"{dataset} {_shown(code)}",
                                  folders[code]))
    return subjects, problems
