"""Reading the prepared data set (layout in :mod:`.format`) back, with memory maps.

:class:`PreparedDataset` cross-checks what it opens (manifest against tables, slices against
subjects, array headers and file sizes against the tables) and names the file at fault otherwise.
Arrays are opened with ``np.load(mmap_mode="r")``: a 2D slice read touches only its own pages, no
gzip is decoded during training, and many data-loader workers (and DDP ranks) share the page cache
instead of each holding the data set in memory. The same checks tell ``sspcmr prepare`` which
prepared subjects it can reuse.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib import format as npy_format

from ..errors import DataError, MachineError, is_machine_failure
from .format import (
    FILE_COLUMNS,
    FORMAT_VERSION,
    IMAGE_FILE,
    LABELS_FILE,
    MANIFEST_FILE,
    META_FILE,
    NAME,
    REPAIR,
    SLICE_COLUMNS,
    SUBJECT_COLUMNS,
    TABLE_DTYPES,
    TABLE_FILES,
    TABLES_FOLDER,
    table_path,
    version_folder,
)


def read_meta(folder: Path) -> dict | None:
    """A prepared subject's metadata, or None when absent or unreadable (then it is redone)."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except OSError as error:
        if is_machine_failure(error):
            raise
        return None
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


# ----------------------------------------------------------------------------------------------- checks

def sha256_file(path: str | Path) -> str:
    """Content hash of a file, read in 1 MiB blocks (prepared arrays, transfer provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, expected file size)`` from a ``.npy`` header, without reading the data.

    Raises:
        OSError: the file cannot be opened; ValueError: not a ``.npy`` file.
    """
    with open(path, "rb") as handle:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        offset = handle.tell()
    if fortran or dtype.hasobject:
        raise ValueError("not a C-ordered plain array")
    return tuple(int(n) for n in shape), dtype, offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def array_problem(folder: Path, n_frames: int, n_slices: int, height: int, width: int,
                  image_dtype: str | None = None) -> tuple[Path, str] | None:
    """``(file, problem)`` when a subject folder's arrays are missing, truncated or of the wrong shape; else None.

    Reads the two ``.npy`` headers and the file sizes only (cheap). Machine failures propagate as ``OSError``.
    """
    expected = {IMAGE_FILE: ((n_frames, n_slices, height, width), image_dtype),
                LABELS_FILE: ((2, n_slices, height, width), "uint8")}
    for name, (shape, dtype) in expected.items():
        path = folder / name
        try:
            found, found_dtype, size = npy_header(path)
            actual = path.stat().st_size
        except FileNotFoundError:
            return path, "file is missing"
        except OSError as error:
            if is_machine_failure(error):
                raise
            return path, f"cannot read the array header ({error})"
        except ValueError as error:
            return path, f"not a NumPy array file ({error})"
        if found != shape:
            return path, f"array shape {found} differs from the recorded {shape}"
        if dtype is not None and found_dtype != np.dtype(dtype):
            return path, f"array type {found_dtype} differs from the recorded {dtype}"
        if actual != size:
            return path, f"file has {actual} bytes, its header needs {size} (truncated or damaged)"
    return None


def content_problem(folder: Path, meta: dict) -> tuple[Path, str] | None:
    """``(file, problem)`` when an array's sha256 differs from the one recorded in ``meta.json`` at write time."""
    for name, key in ((IMAGE_FILE, "image_sha256"), (LABELS_FILE, "labels_sha256")):
        path = folder / name
        try:
            digest = sha256_file(path)
        except FileNotFoundError:
            return path, "file is missing"
        if digest != meta.get(key):
            return path, "content differs from the sha256 recorded when it was written"
    return None


# ----------------------------------------------------------------------------------------------- reading

def read_manifest(root: Path) -> dict:
    """The manifest of a prepared folder, checked for its format and generation.

    Raises:
        DataError: missing, unreadable, another format, or malformed.
    """
    path = root / MANIFEST_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{root} is not a prepared data set (no {MANIFEST_FILE}); run `sspcmr prepare` first") \
            from None
    except OSError as error:
        if is_machine_failure(error):
            raise MachineError("reading", path, error) from error
        raise DataError(f"cannot read the manifest ({error}); {REPAIR}", file=path) from None
    try:
        info = json.loads(text)
    except ValueError as error:
        raise DataError(f"the manifest is not valid JSON ({error}); {REPAIR}", file=path) from None
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        version = info.get("format_version") if isinstance(info, dict) else None
        raise DataError(f"prepared with format {version}, this sspcmr reads {FORMAT_VERSION}; "
                        "run `sspcmr prepare` again", file=path)
    generation, tables = info.get("generation"), info.get("tables")
    if not isinstance(generation, str) or not NAME.fullmatch(generation) or not isinstance(tables, dict) \
            or any(not isinstance(tables.get(name), dict) for name in TABLE_FILES):
        raise DataError(f"the manifest lacks its generation or table entries; {REPAIR}", file=path)
    return info


def read_table(root: Path, manifest: dict, name: str) -> tuple[pd.DataFrame, bytes]:
    """One table of the manifest's generation, checked against the manifest's size, sha256 and row count.

    Raises:
        DataError: missing, or not the file the manifest was written with.
    """
    path, entry = table_path(root, manifest, name), manifest["tables"][name]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"table named by {MANIFEST_FILE} is missing; {REPAIR}", file=path) from None
    except OSError as error:
        if is_machine_failure(error):
            raise MachineError("reading", path, error) from error
        raise DataError(f"cannot read the table ({error}); {REPAIR}", file=path) from None
    if len(data) != entry.get("bytes") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise DataError(f"table differs from the one {MANIFEST_FILE} was written with (size or sha256; another "
                        f"run's table or changed since); {REPAIR}", file=path)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=TABLE_DTYPES[name])
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"cannot parse the table ({error}); {REPAIR}", file=path) from None
    if len(frame) != entry.get("rows"):
        raise DataError(f"table has {len(frame)} rows, {MANIFEST_FILE} says {entry.get('rows')}; {REPAIR}", file=path)
    return frame, data


def check_tables(root: Path, manifest: dict, subjects: pd.DataFrame, slices: pd.DataFrame) -> None:
    """Counts against the manifest, and the slice table against the subject table.

    Raises:
        DataError: naming the table at fault.
    """
    subjects_path, slices_path = table_path(root, manifest, "subjects.csv"), table_path(root, manifest, "slices.csv")
    for path, frame, columns in ((subjects_path, subjects, SUBJECT_COLUMNS + FILE_COLUMNS),
                                 (slices_path, slices, SLICE_COLUMNS)):
        if missing := [c for c in columns if c not in frame.columns]:
            raise DataError(f"table lacks columns {missing}; {REPAIR}", file=path)
    if manifest.get("subjects") != len(subjects):
        raise DataError(f"{len(subjects)} subjects, {MANIFEST_FILE} says {manifest.get('subjects')}; {REPAIR}",
                        file=subjects_path)
    if manifest.get("slices") != len(slices):
        raise DataError(f"{len(slices)} slices, {MANIFEST_FILE} says {manifest.get('slices')}; {REPAIR}",
                        file=slices_path)
    index = pd.to_numeric(slices["subject_index"], errors="coerce").to_numpy()
    if len(index) and not (np.isfinite(index).all() and index.min() >= 0 and index.max() < len(subjects)
                           and (index == np.round(index)).all()):
        raise DataError(f"subject_index outside the {len(subjects)} subjects of subjects.csv; {REPAIR}",
                        file=slices_path)
    index = index.astype(np.int64)
    names = (subjects["dataset"].to_numpy()[index] == slices["dataset"].to_numpy()) \
        & (subjects["SubjectID"].to_numpy()[index] == slices["subject"].to_numpy())
    if not names.all():
        row = int(np.flatnonzero(~names)[0])
        raise DataError(f"row {row} names {slices['dataset'].iloc[row]} {slices['subject'].iloc[row]}, but its "
                        f"subject_index {index[row]} is another subject in subjects.csv; {REPAIR}", file=slices_path)
    counts = np.bincount(index, minlength=len(subjects))
    expected = (subjects["n_slices"] * subjects["n_frames"]).to_numpy()
    if (counts != expected).any():
        i = int(np.flatnonzero(counts != expected)[0])
        raise DataError(f"{counts[i]} rows for {subjects['dataset'].iloc[i]} {subjects['SubjectID'].iloc[i]}, "
                        f"subjects.csv says {expected[i]} (slices x frames); {REPAIR}", file=slices_path)


class PreparedDataset:
    """Read access to a prepared folder: tables in memory, arrays memory-mapped on first use.

    Opening checks that the folder is one consistent data set: the tables are those its manifest
    names (size, sha256, row counts), every slice row belongs to its subject, and every subject's
    arrays exist with the recorded shapes and full file sizes (headers only, cheap).

    Args:
        root: the folder written by ``sspcmr prepare``.

    Attributes:
        subjects: the subject table (row order = ``subject_index``).
        slices: the slice index table.
        corrections: metadata values corrected from the data (``dataset``, ``SubjectID``, ``note``).
        invalid: subjects left out by ``--skip-invalid`` (``subject``, ``file``, ``problem``).
        files: per subject (same rows as ``subjects``) its version ``folder``, ``fingerprint`` and array sha256s.
        manifest: the manifest (format version, generation, counts, tables).
        tables: the folder holding the current generation's tables.

    Raises:
        DataError: not a prepared folder, another format, or an inconsistent one (naming the file
            and the problem, and how to repair it).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.tables = self.root / TABLES_FOLDER / self.manifest["generation"]
        frames = {name: read_table(self.root, self.manifest, name)[0] for name in TABLE_FILES}
        table, self.slices = frames["subjects.csv"], frames["slices.csv"]
        check_tables(self.root, self.manifest, table, self.slices)
        self.subjects = table[SUBJECT_COLUMNS]  # (a copy: pandas copies on write)
        self.files = table[FILE_COLUMNS]
        self.corrections, self.invalid = frames["corrections.csv"], frames["invalid.csv"]
        self._folders = []
        for row in table.itertuples(index=False):
            folder = version_folder(self.root, row.folder)
            if folder is None:
                raise DataError(f"{row.dataset} {row.SubjectID} has a malformed folder {row.folder!r}; {REPAIR}",
                                file=self.tables / "subjects.csv")
            try:
                problem = array_problem(folder, row.n_frames, row.n_slices, row.height, row.width)
            except OSError as error:
                raise MachineError("reading", error.filename or folder, error) from error
            if problem is not None:
                raise DataError(f"{problem[1]}; {REPAIR}", f"{row.dataset} {row.SubjectID}", problem[0])
            self._folders.append(folder)
        self._arrays: dict[tuple[int, str], np.ndarray] = {}

    def __getstate__(self) -> dict:
        # Workers and DDP ranks re-open their own memory maps instead of pickling array data.
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

    def folder(self, subject_index: int) -> Path:
        """The version folder holding the subject's ``image.npy``, ``labels.npy`` and ``meta.json``."""
        return self._folders[subject_index]

    def _array(self, subject_index: int, name: str) -> np.ndarray:
        key = (subject_index, name)
        if key not in self._arrays:
            path = self.folder(subject_index) / name
            try:
                self._arrays[key] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                if is_machine_failure(error):
                    raise MachineError("reading", path, error) from error
                raise DataError(f"cannot memory-map prepared array ({error}); {REPAIR}", file=path) from None
        return self._arrays[key]

    def image(self, subject_index: int) -> np.ndarray:
        """(T, Z, H, W) cine in source units (int16 or float32), memory-mapped."""
        return self._array(subject_index, IMAGE_FILE)

    def labels(self, subject_index: int) -> np.ndarray:
        """(2, Z, H, W) uint8 labels of [ED, ES], memory-mapped."""
        return self._array(subject_index, LABELS_FILE)

    def meta(self, subject_index: int) -> dict:
        return read_meta(self.folder(subject_index)) or {}

    def metadata_frames(self) -> dict[str, pd.DataFrame]:
        """Per data set, ``SubjectID`` / ``Vendor`` / ``Pathology`` in the original CSV order (for splits)."""
        frames = {}
        for dataset, rows in self.subjects.groupby("dataset", sort=True):
            frames[dataset] = rows.sort_values("csv_order")[["SubjectID", "Vendor", "Pathology"]].reset_index(drop=True)
        return frames
