"""What a ``prepare`` run finds in the prepared folder and what it leaves there: the previous generation (for
reuse and carrying over), whether a prepared subject is still intact, whether anything changed at all, and the
clean-up after the switch (only what the new manifest does not name is deleted; see
:mod:`sspcmr.data.store.format`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..preprocessing.reference_orientation import ANATOMICAL
from ..store.format import MANIFEST_FILE, SUBJECTS_FOLDER, TABLE_FILES, TABLES_FOLDER, version_folder
from ..store.reader import array_problem, content_problem, read_manifest, read_table

LEGACY_TABLES = ("subjects.csv", "slices.csv", "corrections.csv", "invalid.csv")  # format 1, top level


@dataclass
class Previous:
    """The current data set, as far as it can be read (for reuse, carrying over and clean-up)."""

    manifest: dict | None = None
    table: pd.DataFrame | None = None  # subjects.csv, verified against the manifest
    folders: dict[tuple[str, str], Path] = field(default_factory=dict)


def subject_damage(folder: Path, meta: dict, verify: bool) -> tuple[Path, str] | None:
    """``(file, problem)`` when a prepared subject's arrays are not what its ``meta.json`` records."""
    try:
        problem = array_problem(folder, meta["n_frames"], meta["n_slices"], meta["height"], meta["width"],
                                meta["dtype"])
    except (KeyError, TypeError) as error:
        return folder / "meta.json", f"incomplete metadata ({error})"
    if problem is None and verify:
        problem = content_problem(folder, meta)
    return problem


def read_previous(out: Path) -> Previous:
    """The current manifest and subject table, when readable and consistent (else as good as none)."""
    previous = Previous()
    try:
        previous.manifest = read_manifest(out)
        previous.table = read_table(out, previous.manifest, "subjects.csv")[0]
    except DataError:
        return previous
    if any(c not in previous.table.columns for c in ("dataset", "SubjectID", "folder")):
        previous.table = None
        return previous
    for row in previous.table.itertuples(index=False):
        folder = version_folder(out, row.folder)
        if folder is not None:
            previous.folders[(row.dataset, row.SubjectID)] = folder
    return previous


def orientation_conflict(previous: Previous, datasets: tuple[str, ...], orientation: str) -> str | None:
    """Why the data sets a run would carry over unselected cannot join its data set: they were prepared with
    another orientation rule (a manifest older than the option means ``anatomical``); None when they can."""
    if previous.table is None:
        return None
    before = previous.manifest.get("orientation", ANATOMICAL)
    others = sorted(set(previous.table["dataset"]) - set(datasets))
    if not others or before == orientation:
        return None
    return (f"holds {', '.join(others)} subjects prepared with the {before} orientation: select every data set "
            f"(--datasets mnms mnms2) to prepare them all with the {orientation} orientation, or use another folder")


def unchanged(out: Path, current: dict | None, new: dict) -> bool:
    """True when the current generation's tables are intact and identical to the new ones (nothing to switch)."""
    if current is None:
        return False
    keys = ("format_version", "datasets", "subjects", "slices")
    if current.get("orientation", ANATOMICAL) != new.get("orientation", ANATOMICAL):
        return False
    if any(current.get(k) != new[k] for k in keys) or any(
            current["tables"][name].get(k) != new["tables"][name][k] for name in TABLE_FILES
            for k in ("rows", "bytes", "sha256")):
        return False
    try:
        for name in TABLE_FILES:
            read_table(out, current, name)
    except DataError:
        return False
    return True


def removed_subjects(out: Path, datasets: tuple[str, ...], previous: Previous,
                     entries: list[tuple[dict, str]]) -> list[str]:
    """Subjects of the selected data sets that were prepared before and are not in the new data set."""
    kept = {(m["dataset"], m["subject"]) for m, _ in entries}
    before = set(previous.folders)
    for dataset in datasets:
        base = out / SUBJECTS_FOLDER / dataset
        before |= {(dataset, p.name) for p in base.glob("*") if p.is_dir() and any(p.iterdir())}
    order = {d: i for i, d in enumerate(datasets)}
    gone = sorted((key for key in before - kept if key[0] in order), key=lambda k: (order[k[0]], k[1]))
    return [f"{dataset} {subject}" for dataset, subject in gone]


def remove_leftovers(out: Path) -> None:
    for stale in list(out.glob(".staging-*")) + list(out.glob(".trash-*")):
        shutil.rmtree(stale, ignore_errors=True)


def collect_garbage(out: Path, generation: str, referenced: set[str], datasets: set[str]) -> None:
    """Delete what the current manifest does not name (best effort: a failure here changes nothing it names)."""
    def remove(path: Path) -> None:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass

    for path in (out / TABLES_FOLDER).glob("*"):
        if path.name != generation:
            remove(path)
    for dataset in sorted(datasets):
        base = out / SUBJECTS_FOLDER / dataset
        for subject in sorted(base.glob("*")):
            if not subject.is_dir() or subject.is_symlink():
                continue
            for child in sorted(subject.iterdir()):
                if f"{SUBJECTS_FOLDER}/{dataset}/{subject.name}/{child.name}" not in referenced:
                    remove(child)
            if not any(subject.iterdir()):
                remove(subject)
        if base.is_dir() and not any(base.iterdir()):
            remove(base)
    for name in LEGACY_TABLES:
        if (out / name).is_file():
            remove(out / name)
    for path in out.glob(f".{MANIFEST_FILE}.*"):  # a manifest write that was killed
        remove(path)
    remove_leftovers(out)
