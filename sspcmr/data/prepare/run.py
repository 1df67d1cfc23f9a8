"""``sspcmr prepare``: validate every selected subject, then write the prepared data set.

Order of work, so a failure or an interruption never leaves a half-written data set (the layout is
:mod:`sspcmr.data.store.format`'s):

1. lock the prepared folder (a second run on it stops with a message instead of interfering);
2. find the subjects and their metadata rows (CSV rows without folders and folders without rows
   are problems of those subjects);
3. reuse each subject of the current data set whose fingerprint (source files, metadata row) is
   unchanged and whose arrays are intact (shapes and sizes; with ``verify`` also their sha256);
   prepare every other one into a hidden staging folder;
4. if any subject is invalid, stop with one line per problem and delete the staging folder, unless
   ``skip_invalid``, which leaves those subjects out and lists them in ``invalid.csv``;
5. move each staged subject into a new version folder and write a new generation of the tables
   beside the current ones (nothing the current manifest names is touched), then replace
   ``manifest.json``: the one atomic switch to the new data set;
6. delete what the new manifest does not name (old generations, old versions, leftovers).

The orientation rule is in the manifest and every subject's fingerprint: a run with another rule prepares
every selected subject again, and stops before writing when it would carry unselected ones of the other rule.

A failure of the machine (disk full, file-size limit, permissions, read-only folder, I/O error) is
never taken for a problem of the data: the whole run stops with :class:`MachineError` naming the path,
and the previous data set stays exactly as it was. The raw folder is only ever read.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import atomic_write_bytes
from ..errors import DataError, MachineError
from ..preprocessing.reference_orientation import ANATOMICAL, ORIENTATION_RULES
from ..store.format import MANIFEST_FILE, SUBJECTS_FOLDER, TABLES_FOLDER, version_folder
from ..store.reader import read_meta
from ..store.writer import fsync_path, new_generation, write_synced
from .failures import machine_cause, machine_failures
from .generations import (
    Previous,
    collect_garbage,
    orientation_conflict,
    read_previous,
    remove_leftovers,
    removed_subjects,
    subject_damage,
    unchanged,
)
from .lock import FolderLock
from .pool import worker_pool
from .sources import RawSubject, dataset_names, find_subjects
from .subject import fingerprint, prepare_subject

KEPT = "the previous prepared data set is unchanged"
KEPT_NONE = "no prepared data set was written"


class PrepareFailed(DataError):
    """Some subjects are invalid; ``problems`` holds one :class:`DataError` per problem."""

    def __init__(self, problems: list[DataError]) -> None:
        self.problems = problems
        listed = "; ".join(str(p) for p in problems[:3]) + (" ..." if len(problems) > 3 else "")
        super().__init__(f"{len(problems)} invalid subject(s), nothing was written (use --skip-invalid to leave "
                         f"them out): {listed}")


@dataclass
class PrepareReport:
    """What a prepare run did.

    ``prepared`` lists every subject prepared by this run; those among them whose previous prepared
    copy was damaged (missing or truncated arrays, or with ``verify`` a changed sha256) are also in
    ``repaired``, with what was wrong in ``damage``.
    """

    prepared: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    invalid: list[DataError] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    damage: dict[str, str] = field(default_factory=dict)
    generation: str = ""
    orientation: str = ANATOMICAL
    cleanup_error: str = ""  # old generations that could not be deleted (the next run retries)
    subjects: int = 0
    slices: int = 0


def _prepare_one(job: tuple[RawSubject, Path, str]) -> tuple[RawSubject, dict | None, DataError | None,
                                                             OSError | None]:
    """``(subject, meta, data error, machine failure)``; runs in worker processes, so only picklable results."""
    subject, folder, orientation = job
    try:
        return subject, prepare_subject(subject, folder, orientation), None, None
    except Exception as error:
        shutil.rmtree(folder, ignore_errors=True)
        machine = machine_cause(error)
        if isinstance(machine, OSError):
            return subject, None, None, OSError(machine.errno, machine.strerror, machine.filename)
        if machine is not None:
            return subject, None, None, OSError(0, f"{type(machine).__name__}: {machine}", None)
        if isinstance(error, DataError):
            return subject, None, error, None
        # an unforeseen problem with one file must not hide the others
        return subject, None, DataError(f"unexpected {type(error).__name__}: {error}", subject.name), None


def prepare_dataset(raw: str | Path, out: str | Path, datasets: tuple[str, ...] | list[str] = ("mnms", "mnms2"),
                    skip_invalid: bool = False, workers: int = 1, progress: bool = True, verify: bool = False,
                    wait_for_lock: bool = False, orientation: str = ANATOMICAL) -> PrepareReport:
    """Prepare M&Ms / M&Ms-2 data (as downloaded, or the synthetic phantom) for training.

    Args:
        raw: folder holding ``MnM/`` and/or ``MnM2/`` (or ``original_data/`` with them).
        out: prepared folder (created; re-running updates it incrementally).
        datasets: ``mnms`` and/or ``mnms2`` (``mm1`` / ``mm2`` accepted too).
        skip_invalid: leave invalid subjects out (listed in ``invalid.csv``) instead of failing.
        workers: parallel processes.
        progress: show a progress bar.
        verify: also re-hash the arrays of unchanged subjects and redo those whose content changed
            (without it, reuse checks the array headers and file sizes only).
        wait_for_lock: wait for another run on ``out`` to finish instead of stopping.
        orientation: ``anatomical`` (sspcmr's rule: base at slice 0 from the affine, any vendor) or
            ``reference`` (the reference study's per-data-set header heuristics, docs/reference.md#reformatting).
            Recorded in the manifest; changing it prepares every selected subject again.

    Raises:
        DataError: no subjects selected, an unknown orientation rule, ``out`` being prepared by another
            process (:class:`~sspcmr.data.prepare.lock.FolderLocked`), ``out`` holding unselected data sets
            prepared with another orientation rule, or (without ``skip_invalid``) :class:`PrepareFailed`.
        MachineError: the machine failed (disk full, permissions, ...); the previous data set is unchanged.
    """
    raw, out = Path(raw), Path(out)
    names = dataset_names(datasets)
    if orientation not in ORIENTATION_RULES:
        raise DataError(f"orientation must be one of {', '.join(ORIENTATION_RULES)}; got {orientation!r}")
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise DataError(f"the prepared folder {out} must lie outside the raw folder {raw} (raw data is never changed)")
    if out.exists() and not out.is_dir():
        raise DataError(f"the prepared folder {out} exists and is not a folder")
    lock = FolderLock(out, wait=wait_for_lock, purpose="prepared")
    with machine_failures("locking", lock.path, _kept(out)):
        lock.acquire()
    try:
        return _Run(raw, out, names, skip_invalid, workers, progress, verify, orientation).run()
    finally:
        lock.release()


def _kept(out: Path) -> str:
    return KEPT if (out / MANIFEST_FILE).exists() else KEPT_NONE


class _Run:
    def __init__(self, raw: Path, out: Path, names: tuple[str, ...], skip_invalid: bool, workers: int,
                 progress: bool, verify: bool, orientation: str = ANATOMICAL) -> None:
        self.raw, self.out, self.names = raw, out, names
        self.skip_invalid, self.workers, self.progress, self.verify = skip_invalid, workers, progress, verify
        self.orientation = orientation
        self.generation = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.staging = out / f".staging-{self.generation}"
        self.kept = _kept(out)
        self.created: list[Path] = []  # new folders of this run, removed again unless the switch happened
        self.report = PrepareReport(orientation=orientation)

    def run(self) -> PrepareReport:
        out, report = self.out, self.report
        remove_leftovers(out)  # staging of runs that were killed (the lock says none is running)
        try:
            with machine_failures("reading", out, self.kept):
                previous = read_previous(out)
            if conflict := orientation_conflict(previous, self.names, self.orientation):
                raise DataError(f"{out} {conflict}; {self.kept}")
            with machine_failures("reading", self.raw, self.kept):
                subjects, problems = find_subjects(self.raw, self.names)
            if not subjects and not problems:
                raise DataError(f"empty selection: no {'/'.join(self.names)} subjects found under {self.raw}")
            entries, jobs = self._reuse(subjects, previous)
            staged = self._prepare(jobs, problems)
            if problems and not self.skip_invalid:
                raise PrepareFailed(problems)
            if not staged and not entries:
                raise DataError(f"empty selection: every one of {len(problems)} subject(s) under {self.raw} is invalid")
            entries += [(meta, f"{SUBJECTS_FOLDER}/{s.dataset}/{s.subject_id}/{self.generation}") for s, meta in staged]
            entries += self._carry_over(previous)
            report.invalid = problems
            report.prepared = [s.name for s, _ in staged]
            report.repaired = [name for name in report.prepared if name in report.damage]
            report.damage = {name: report.damage[name] for name in report.repaired}
            tables, manifest = self._tables(entries)
            if staged or not unchanged(out, previous.manifest, manifest):
                self._commit(staged, tables, manifest)
            else:
                manifest = previous.manifest
            report.generation = manifest["generation"]
            report.removed += removed_subjects(out, self.names, previous, entries)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            for path in reversed(self.created):  # only when the switch did not happen
                shutil.rmtree(path, ignore_errors=True)
        referenced = {folder for _, folder in entries}
        try:
            collect_garbage(out, manifest["generation"], referenced,
                             set(self.names) | {m["dataset"] for m, _ in entries})
        except OSError as error:  # nothing the manifest names is affected; the next run retries
            report.cleanup_error = f"{getattr(error, 'filename', None) or out}: {error.strerror or error}"
        return report

    # -------------------------------------------------------------------------------------------- steps

    def _reuse(self, subjects: list[RawSubject], previous: Previous) -> tuple[list[tuple[dict, str]], list]:
        """Subjects of the current data set that are unchanged and intact, and jobs for all others."""
        entries, jobs = [], []
        for subject in subjects:
            with machine_failures("reading", self.raw, self.kept):
                expected = fingerprint(subject, self.orientation)
            key = (subject.dataset, subject.subject_id)
            if previous.table is not None:
                candidates = [previous.folders[key]] if key in previous.folders else []
            else:  # no readable subject table: any intact version folder of this subject will do
                base = self.out / SUBJECTS_FOLDER / subject.dataset / subject.subject_id
                candidates = sorted(p for p in base.glob("*") if p.is_dir() and not p.name.startswith("."))
            for folder in candidates:
                with machine_failures("reading", folder, self.kept):
                    meta, problem = read_meta(folder), None
                    if meta is None:
                        if previous.table is not None:
                            self.report.damage[subject.name] = f"{folder / 'meta.json'}: missing or unreadable"
                        continue
                    if meta.get("fingerprint") != expected:
                        continue
                    problem = subject_damage(folder, meta, self.verify)
                if problem is None:
                    entries.append((meta, folder.relative_to(self.out).as_posix()))
                    self.report.reused.append(subject.name)
                    break
                self.report.damage[subject.name] = f"{problem[0]}: {problem[1]}"
            else:
                jobs.append((subject, self.staging / subject.dataset / subject.subject_id, self.orientation))
        return entries, jobs

    def _prepare(self, jobs: list, problems: list[DataError]) -> list[tuple[RawSubject, dict]]:
        staged = []
        bar = tqdm(total=len(jobs), desc="prepare", unit="subject", disable=not self.progress or not jobs)
        try:
            with worker_pool(self.workers, len(jobs)) as pool:
                for subject, meta, error, machine in pool(_prepare_one, jobs):
                    bar.update()
                    if machine is not None:
                        path = machine.filename or subject.files.get("cine")
                        writing = path is not None and _inside(Path(path), self.out)
                        raise MachineError("writing" if writing else "reading", path, machine, self.kept)
                    if error is not None:
                        problems.append(error)
                    else:
                        staged.append((subject, meta))
        finally:
            bar.close()
        return staged

    def _carry_over(self, previous: Previous) -> list[tuple[dict, str]]:
        """Subjects of data sets not selected this time stay as they are (when intact)."""
        entries = []
        if previous.table is None:
            return entries
        for row in previous.table.itertuples(index=False):
            if row.dataset in self.names:
                continue
            folder = version_folder(self.out, row.folder)
            with machine_failures("reading", folder, self.kept):
                meta = read_meta(folder) if folder is not None else None
                intact = meta is not None and subject_damage(folder, meta, False) is None
            if intact:
                entries.append((meta, row.folder))
            else:
                self.report.removed.append(f"{row.dataset} {row.SubjectID}")
        return entries

    def _tables(self, entries: list[tuple[dict, str]]) -> tuple[dict[str, bytes], dict]:
        report = self.report
        invalid = [{"subject": e.subject or "", "file": e.file or "", "problem": e.problem} for e in report.invalid]
        generation = new_generation(entries, invalid, self.generation)
        generation.manifest["orientation"] = self.orientation  # the rule of every subject it names
        report.corrections = [f"{c['dataset']} {c['SubjectID']}: {c['note']}" for c in generation.corrections]
        report.subjects, report.slices = generation.manifest["subjects"], generation.manifest["slices"]
        return generation.tables, generation.manifest

    def _commit(self, staged: list[tuple[RawSubject, dict]], tables: dict[str, bytes], manifest: dict) -> None:
        """New version folders and table generation beside the current ones, then the switch."""
        out = self.out
        for subject, _ in staged:
            final = out / SUBJECTS_FOLDER / subject.dataset / subject.subject_id / self.generation
            with machine_failures("writing", final, self.kept, exact=True):  # (a rename's OS error names its source)
                self._makedirs(final.parent)
                if final.exists():  # never renamed over anything
                    raise FileExistsError(f"version folder {final} exists already")
                os.rename(self.staging / subject.dataset / subject.subject_id, final)
                self.created.append(final)
                fsync_path(final.parent, directory=True)
        folder = out / TABLES_FOLDER / self.generation
        staged_tables = self.staging / TABLES_FOLDER
        for name, data in tables.items():
            with machine_failures("writing", staged_tables / name, self.kept):
                staged_tables.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(staged_tables / name, lambda tmp, d=data: write_synced(tmp, d))
        with machine_failures("writing", folder, self.kept, exact=True):
            self._makedirs(folder.parent)
            os.rename(staged_tables, folder)
            self.created.append(folder)
            fsync_path(folder.parent, directory=True)
        with machine_failures("writing", out / MANIFEST_FILE, self.kept):
            text = json.dumps(manifest, indent=1).encode()
            atomic_write_bytes(out / MANIFEST_FILE, lambda tmp: write_synced(tmp, text))
        self.created = []  # switched: everything new is part of the data set now
        try:
            fsync_path(out, directory=True)
        except OSError:
            pass

    def _makedirs(self, folder: Path) -> None:
        """``mkdir -p``, remembering the folders it creates (removed again if the run fails)."""
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir()
            self.created.append(path)


# ----------------------------------------------------------------------------------------------- helpers

def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False
