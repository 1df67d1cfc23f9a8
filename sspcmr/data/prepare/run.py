"""``sspcmr prepare``: validate every selected subject, then write the prepared data set.

Order of work, so a failure or an interruption never leaves a half-written data set:

1. find the subjects and their metadata rows (CSV rows without folders and folders without rows
   are problems of those subjects);
2. prepare every new or changed subject into a hidden staging folder (unchanged subjects, by the
   fingerprint of their source files and metadata row, are reused as they are);
3. if any subject is invalid, stop with one line per problem and delete the staging folder, unless
   ``skip_invalid``, which leaves those subjects out and lists them in ``invalid.csv``;
4. move each staged subject into place with a rename, then write the tables atomically.

The raw folder is only ever read.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..atomic import atomic_write_bytes
from ..errors import DataError
from .sources import CLI_NAMES, RawSubject, find_subjects
from .store import SUBJECT_COLUMNS, read_meta, slice_rows, subject_folder, subject_row
from .subject import FORMAT_VERSION, fingerprint, prepare_subject


class PrepareFailed(DataError):
    """Some subjects are invalid; ``problems`` holds one :class:`DataError` per problem."""

    def __init__(self, problems: list[DataError]) -> None:
        self.problems = problems
        listed = "; ".join(str(p) for p in problems[:3]) + (" ..." if len(problems) > 3 else "")
        super().__init__(f"{len(problems)} invalid subject(s), nothing was written (use --skip-invalid to leave "
                         f"them out): {listed}")


@dataclass
class PrepareReport:
    """What a prepare run did."""

    prepared: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    invalid: list[DataError] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    subjects: int = 0
    slices: int = 0


def _prepare_one(job: tuple[RawSubject, Path]) -> tuple[RawSubject, dict | None, DataError | None]:
    subject, folder = job
    try:
        return subject, prepare_subject(subject, folder), None
    except DataError as error:
        shutil.rmtree(folder, ignore_errors=True)
        return subject, None, error
    except Exception as error:  # an unforeseen problem with one file must not hide the others
        shutil.rmtree(folder, ignore_errors=True)
        return subject, None, DataError(f"unexpected {type(error).__name__}: {error}", subject.name)


def prepare_dataset(raw: str | Path, out: str | Path, datasets: tuple[str, ...] | list[str] = ("mnms", "mnms2"),
                    skip_invalid: bool = False, workers: int = 1, progress: bool = True) -> PrepareReport:
    """Prepare M&Ms / M&Ms-2 data (as downloaded, or the synthetic phantom) for training.

    Args:
        raw: folder holding ``MnM/`` and/or ``MnM2/`` (or ``original_data/`` with them).
        out: prepared folder (created; re-running updates it incrementally).
        datasets: ``mnms`` and/or ``mnms2`` (``mm1`` / ``mm2`` accepted too).
        skip_invalid: leave invalid subjects out (listed in ``invalid.csv``) instead of failing.
        workers: parallel processes.
        progress: show a progress bar.

    Raises:
        DataError: no subjects selected, or (without ``skip_invalid``) :class:`PrepareFailed`.
    """
    raw, out = Path(raw), Path(out)
    names = tuple(dict.fromkeys(CLI_NAMES.get(d, d) for d in datasets))
    if not names or any(d not in ("mm1", "mm2") for d in names):
        raise DataError(f"datasets must be among mnms, mnms2; got {list(datasets)}")
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise DataError(f"the prepared folder {out} must lie outside the raw folder {raw} (raw data is never changed)")
    subjects, problems = find_subjects(raw, names)
    if not subjects and not problems:
        raise DataError(f"empty selection: no {'/'.join(names)} subjects found under {raw}")
    report = PrepareReport()
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob(".staging-*")) + list(out.glob(".trash-*")):
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
    staging = out / f".staging-{uuid.uuid4().hex[:8]}"
    try:
        jobs, metas = [], {}
        for subject in subjects:
            meta = read_meta(subject_folder(out, subject.dataset, subject.subject_id))
            if meta is not None and meta.get("fingerprint") == fingerprint(subject):
                metas[subject.name] = meta
                report.reused.append(subject.name)
            else:
                jobs.append((subject, staging / subject.dataset / subject.subject_id))
        staged = []
        bar = tqdm(total=len(jobs), desc="prepare", unit="subject", disable=not progress or not jobs)
        with _pool(workers, len(jobs)) as pool:
            for subject, meta, error in pool(_prepare_one, jobs):
                bar.update()
                if error is not None:
                    problems.append(error)
                else:
                    staged.append((subject, meta))
        bar.close()
        if problems and not skip_invalid:
            raise PrepareFailed(problems)
        if not staged and not metas:
            raise DataError(f"empty selection: every one of {len(problems)} subject(s) under {raw} is invalid")
        _commit(out, staging, staged)
        for subject, meta in staged:
            metas[subject.name] = meta
            report.prepared.append(subject.name)
        report.invalid = problems
        report.removed = _remove_unlisted(out, names, set(metas))
        _write_tables(out, report)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


class _pool:
    """``with _pool(n, jobs) as run: run(fn, items)`` -> results in completion order (inline when n = 1)."""

    def __init__(self, workers: int, jobs: int) -> None:
        self.workers = max(1, min(int(workers), jobs))
        self.executor = None

    def __enter__(self):
        if self.workers == 1:
            return lambda fn, items: map(fn, items)
        self.executor = ProcessPoolExecutor(self.workers)
        return lambda fn, items: self.executor.map(fn, items, chunksize=1)

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)


def _commit(out: Path, staging: Path, staged: list[tuple[RawSubject, dict]]) -> None:
    """Rename staged subjects into place; an old version is moved aside first, then deleted."""
    trash = out / f".trash-{uuid.uuid4().hex[:8]}"
    for subject, _ in staged:
        final = subject_folder(out, subject.dataset, subject.subject_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            aside = trash / subject.dataset / subject.subject_id
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, aside)
        os.replace(staging / subject.dataset / subject.subject_id, final)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_unlisted(out: Path, datasets: tuple[str, ...], valid: set[str]) -> list[str]:
    """Delete prepared subjects of the selected data sets that are no longer valid or present."""
    removed = []
    for dataset in datasets:
        for folder in sorted((out / "subjects" / dataset).glob("*")):
            if folder.is_dir() and f"{dataset} {folder.name}" not in valid:
                shutil.rmtree(folder)
                removed.append(f"{dataset} {folder.name}")
    return removed


def _write_tables(out: Path, report: PrepareReport) -> None:
    metas = [m for folder in sorted((out / "subjects").glob("*/*")) if (m := read_meta(folder)) is not None]
    metas.sort(key=lambda m: (m["dataset"], m["csv_order"], m["subject"]))
    subjects = pd.DataFrame([subject_row(m) for m in metas], columns=SUBJECT_COLUMNS)
    slices = pd.concat([slice_rows(i, m) for i, m in enumerate(metas)], ignore_index=True)
    corrections = [{"dataset": m["dataset"], "SubjectID": m["subject"], "note": note}
                   for m in metas for note in m.get("notes", [])]
    invalid = [{"subject": e.subject or "", "file": e.file or "", "problem": e.problem} for e in report.invalid]
    report.corrections = [f"{c['dataset']} {c['SubjectID']}: {c['note']}" for c in corrections]
    report.subjects, report.slices = len(subjects), len(slices)
    manifest = {"format_version": FORMAT_VERSION, "datasets": sorted(subjects["dataset"].unique().tolist()),
                "subjects": len(subjects), "slices": len(slices)}
    tables = {
        "subjects.csv": subjects, "slices.csv": slices,
        "corrections.csv": pd.DataFrame(corrections, columns=["dataset", "SubjectID", "note"]),
        "invalid.csv": pd.DataFrame(invalid, columns=["subject", "file", "problem"]),
    }
    for name, table in tables.items():
        atomic_write_bytes(out / name, lambda tmp, t=table: t.to_csv(tmp, index=False))
    atomic_write_bytes(out / "manifest.json", lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
