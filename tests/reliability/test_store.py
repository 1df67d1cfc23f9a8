"""The prepared store under hostile conditions: machine failures (disk full, file-size limit, permissions,
read-only folders) never delete valid prepared data; a store has one committed state (tables never disagree,
an interruption or SIGKILL at any point leaves the previous data set byte-identical); one ``prepare`` per
folder at a time; damaged arrays are noticed and redone."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sspcmr.data.prepare.run as run_module
from sspcmr.data.errors import DataError, MachineError
from sspcmr.data.prepare import prepare_dataset
from sspcmr.data.store import PreparedDataset

from ..data.prepare.helpers import copy_raw, csv_ids, raw_files, set_csv_value

REPO = Path(__file__).resolve().parents[2]
LOCK = ".lock"


@pytest.fixture(scope="module")
def raw_source(tiny_dataset, tmp_path_factory) -> Path:
    """The public part of the session's tiny raw data set (8 M&Ms + 3 M&Ms-2 subjects); tests copy it."""
    return copy_raw(tiny_dataset[0], tmp_path_factory.mktemp("store_raw"))


@pytest.fixture(scope="module")
def prepared_source(raw_source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store_prepared") / "out"
    prepare_dataset(raw_source, out, progress=False)
    return out


@pytest.fixture
def store(raw_source, prepared_source, tmp_path) -> tuple[Path, Path]:
    """A private raw copy and its prepared store (copies keep the modification times: nothing to redo)."""
    raw = copy_raw(raw_source, tmp_path / "raw")
    out = tmp_path / "out"
    shutil.copytree(prepared_source, out)
    return raw, out


def snapshot(out: Path) -> dict[str, str]:
    """Every file (sha256) and folder below ``out``, except the lock file."""
    tree = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        if relative == LOCK:
            continue
        tree[relative] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def contents(out: Path):
    """The subject table and every subject's arrays, as read through PreparedDataset."""
    ds = PreparedDataset(out)
    return ds.subjects.copy(), [(np.array(ds.image(i)), np.array(ds.labels(i))) for i in range(len(ds.subjects))]


def assert_contents(out: Path, expected) -> None:
    subjects, arrays = contents(out)
    assert subjects.equals(expected[0])
    assert len(arrays) == len(expected[1])
    for (image, labels), (image0, labels0) in zip(arrays, expected[1], strict=True):
        np.testing.assert_array_equal(image, image0)
        np.testing.assert_array_equal(labels, labels0)


def touch(path: Path, seconds: int = 5) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def table(out: Path, name: str) -> Path:
    """The current ``name`` table as the manifest names it (a format-1 store had it at the top level)."""
    generation = json.loads((out / "manifest.json").read_text()).get("generation")
    return out / "tables" / generation / name if generation else out / name


def current_folder(out: Path, dataset: str, subject: str) -> Path:
    ds = PreparedDataset(out)
    rows = ds.subjects.index[(ds.subjects["dataset"] == dataset) & (ds.subjects["SubjectID"] == subject)]
    return ds.folder(int(rows[0]))


def no_leftovers(out: Path) -> None:
    assert not list(out.glob(".staging-*")) and not list(out.glob(".trash-*"))
    assert not (out / LOCK).exists()


# ------------------------------------------------------------------------------ defect 1: machine failures

def _fail_array_writes(monkeypatch, code):
    def save(path, *args, **kwargs):
        raise OSError(code, os.strerror(code))  # as a failed write(): no file name
    monkeypatch.setattr(np, "save", save)


def _fail_writes_of(monkeypatch, matches, error):
    """Make run.py's atomic writes of the paths ``matches`` accepts raise ``error`` (naming the path)."""
    real = run_module.atomic_write_bytes

    def atomic_write_bytes(path, write):
        if matches(path):
            raise error(str(path))
        return real(path, write)
    monkeypatch.setattr(run_module, "atomic_write_bytes", atomic_write_bytes)


def _fail_table_writes(monkeypatch, code):
    _fail_writes_of(monkeypatch, lambda path: path.suffix == ".csv",
                    lambda path: PermissionError(code, os.strerror(code), path))


def _fail_manifest_write(monkeypatch, code):
    _fail_writes_of(monkeypatch, lambda path: path.name == "manifest.json",
                    lambda path: OSError(code, os.strerror(code), path))


def _fail_raw_reads(monkeypatch, code):
    import nibabel

    real = nibabel.load

    def load(filename, *args, **kwargs):
        if "_sa.nii" in str(filename):
            raise PermissionError(code, os.strerror(code), str(filename))
        return real(filename, *args, **kwargs)
    monkeypatch.setattr(nibabel, "load", load)


FAILURES = {
    "arrays-ENOSPC": (_fail_array_writes, errno.ENOSPC, 1),
    "arrays-ENOSPC-workers": (_fail_array_writes, errno.ENOSPC, 2),
    "arrays-EFBIG": (_fail_array_writes, errno.EFBIG, 1),
    "tables-EACCES": (_fail_table_writes, errno.EACCES, 1),
    "manifest-EROFS": (_fail_manifest_write, errno.EROFS, 1),
    "raw-EACCES-workers": (_fail_raw_reads, errno.EACCES, 2),
}


@pytest.mark.parametrize("case", FAILURES)
def test_machine_failure_aborts_and_keeps_the_store(case, store, monkeypatch):
    """Was: any exception made the subject invalid, and --skip-invalid then deleted its valid prepared copy."""
    raw, out = store
    fail, code, workers = FAILURES[case]
    before, data = snapshot(out), contents(out)
    for subject in csv_ids(raw, "mm1")[:2]:  # work to do: two subjects to prepare again
        touch(raw_files(raw, "mm1", subject)["cine"])
    fail(monkeypatch, code)
    with pytest.raises(MachineError) as failure:
        prepare_dataset(raw, out, skip_invalid=True, workers=workers, progress=False)
    monkeypatch.undo()
    message = str(failure.value)
    assert os.strerror(code) in message and "\n" not in message
    assert str(raw if case.startswith("raw") else out) in message  # names the path
    assert "previous prepared data set is unchanged" in message
    assert snapshot(out) == before
    no_leftovers(out)
    assert_contents(out, data)
    report = prepare_dataset(raw, out, skip_invalid=True, progress=False)  # the machine is fine again
    assert len(report.prepared) == 2 and report.invalid == [] and report.removed == []
    assert_contents(out, data)


def test_disk_full_in_a_real_process_keeps_the_store(store):
    """A file-size limit (EFBIG, as a full disk) while `sspcmr prepare --skip-invalid` redoes a subject."""
    raw, out = store
    subject = csv_ids(raw, "mm2")[0]
    cine = raw_files(raw, "mm2", subject)["cine"]
    cine.write_bytes(cine.read_bytes())  # the same content, rewritten: work to do
    touch(cine)
    before, data = snapshot(out), contents(out)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))  # arrays are larger; the lock file is not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond it fails with EFBIG instead of a kill

    result = subprocess.run([sys.executable, "-m", "sspcmr", "prepare", "--raw", str(raw), "--out", str(out),
                             "--skip-invalid", "--quiet"], cwd=REPO, capture_output=True, text=True,
                            preexec_fn=limit, timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    assert str(out) in result.stderr and os.strerror(errno.EFBIG) in result.stderr, result.stderr
    assert snapshot(out) == before
    no_leftovers(out)
    assert_contents(out, data)


def _read_only_folders_restrict(tmp_path: Path) -> bool:
    """False for root (and anyone with CAP_DAC_OVERRIDE), who writes into read-only folders anyway."""
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o555)
    try:
        (probe / "file").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
    return False


@pytest.mark.parametrize("top", [True, False], ids=["whole-folder", "subject-folders"])
def test_read_only_store_is_left_alone(top, store, tmp_path):
    if not _read_only_folders_restrict(tmp_path):
        pytest.skip("root writes into read-only folders (the in-process cases above cover it)")
    raw, out = store
    touch(raw_files(raw, "mm1", csv_ids(raw, "mm1")[0])["cine"])
    before = snapshot(out)
    folders = [out] * top + [p for p in out.rglob("*") if p.is_dir()]
    for folder in folders:
        folder.chmod(0o555)
    try:
        with pytest.raises(MachineError, match="Permission denied") as failure:
            prepare_dataset(raw, out, skip_invalid=True, progress=False)
        assert str(out) in str(failure.value)
        assert snapshot(out) == before
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_unexpected_error_of_one_subject_is_still_a_data_error(store, monkeypatch):
    raw, out = store
    subject = csv_ids(raw, "mm1")[3]
    touch(raw_files(raw, "mm1", subject)["cine"])
    monkeypatch.setattr(run_module, "prepare_subject", lambda *job: (_ for _ in ()).throw(KeyError("bug")))
    report = prepare_dataset(raw, out, skip_invalid=True, progress=False)
    assert [(e.subject, e.problem) for e in report.invalid] == [(f"mm1 {subject}", "unexpected KeyError: 'bug'")]
    assert report.removed == [f"mm1 {subject}"]
    assert len(PreparedDataset(out).subjects) == len(csv_ids(raw, "mm1")) + len(csv_ids(raw, "mm2")) - 1


# ------------------------------------------------------------------------------ defect 2: one committed state

def test_interruption_between_two_tables_keeps_the_previous_state(store, monkeypatch):
    """Was: subjects.csv and slices.csv were replaced one after the other; stopped between them they disagreed."""
    raw, out = store
    before, data = snapshot(out), contents(out)
    subject = csv_ids(raw, "mm1")[1]
    set_csv_value(raw, "mm1", subject, "Pathology", "HCM")  # changes a row of both tables
    real = run_module.atomic_write_bytes

    def atomic_write_bytes(path, write):
        if path.name == "slices.csv":
            raise KeyboardInterrupt
        return real(path, write)
    monkeypatch.setattr(run_module, "atomic_write_bytes", atomic_write_bytes)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(raw, out, progress=False)
    monkeypatch.undo()
    assert snapshot(out) == before
    assert_contents(out, data)
    prepare_dataset(raw, out, progress=False)
    ds = PreparedDataset(out)
    assert set(ds.slices.loc[ds.slices["subject"] == subject, "pathology"]) == {"HCM"}
    assert ds.subjects.set_index("SubjectID").loc[subject, "Pathology"] == "HCM"


def test_tables_that_disagree_are_refused(store, tmp_path):
    raw, out = store
    other = tmp_path / "other"
    prepare_dataset(raw, other, datasets=["mnms"], progress=False)  # a consistent store, fewer subjects
    data = contents(out)
    table(out, "slices.csv").write_bytes(table(other, "slices.csv").read_bytes())
    with pytest.raises(DataError) as refused:
        PreparedDataset(out)
    message = str(refused.value)
    assert str(table(out, "slices.csv")) in message and "sspcmr prepare` again on the same raw folder" in message
    report = prepare_dataset(raw, out, progress=False)  # the repair: arrays reused, tables rewritten
    assert report.prepared == [] and report.repaired == []
    assert_contents(out, data)


def test_slices_that_name_other_subjects_are_refused(store):
    """Tables that match the manifest but not each other (e.g. written by a buggy tool) are refused too."""
    raw, out = store
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    path = table(out, "slices.csv")
    lines = path.read_bytes().decode().splitlines(keepends=True)
    header = lines[0].split(",")
    column = header.index("subject")
    row = lines[1].split(",")
    row[column] = "NOBODY"
    lines[1] = ",".join(row)
    data = "".join(lines).encode()
    path.write_bytes(data)
    manifest["tables"]["slices.csv"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"slices\.csv.*NOBODY.*subject_index 0 is another subject.*sspcmr prepare"):
        PreparedDataset(out)


# ------------------------------------------------------------------------------ defect 3: one run at a time

def _hold_lock(out: Path, pid: int | None = None) -> int:
    """Lock ``out`` as a running prepare does (flock on OUT/.lock with the holder's details); returns the fd."""
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    info = {"pid": pid or os.getpid(), "host": socket.gethostname(), "started": "2030-01-01 12:00:00 +0000"}
    os.write(fd, json.dumps(info).encode())
    return fd


def test_second_prepare_is_refused_and_leaves_the_first_alone(store, capsys):
    """Was: a second prepare on the same folder deleted the first one's live staging folder."""
    from sspcmr.commands.main import main

    raw, out = store
    touch(raw_files(raw, "mm1", csv_ids(raw, "mm1")[0])["cine"])
    live = out / ".staging-first" / "mm1" / "X0X0X0"
    live.mkdir(parents=True)
    (live / "image.npy").write_bytes(b"being written by the first run")
    before = snapshot(out)
    fd = _hold_lock(out)
    try:
        started = time.monotonic()
        with pytest.raises(DataError) as refused:
            prepare_dataset(raw, out, progress=False)
        assert time.monotonic() - started < 5  # at once
        message = str(refused.value)
        assert f"{out} is being prepared by process {os.getpid()} (started 2030-01-01 12:00:00 +0000)" in message
        assert "wait for it or stop it" in message and "\n" not in message
        capsys.readouterr()
        assert main(["prepare", "--raw", str(raw), "--out", str(out), "--quiet"]) != 0
        err = capsys.readouterr().err
        assert "being prepared by process" in err and "Traceback" not in err
        assert snapshot(out) == before and (live / "image.npy").is_file()
    finally:
        os.close(fd)


def test_prepare_waits_for_the_lock_when_asked(store):
    raw, out = store
    touch(raw_files(raw, "mm1", csv_ids(raw, "mm1")[0])["cine"])
    fd = _hold_lock(out)
    released = threading.Timer(0.5, os.close, (fd,))
    started = time.monotonic()
    released.start()
    try:
        report = prepare_dataset(raw, out, progress=False, wait_for_lock=True)
    finally:
        released.join()
    assert time.monotonic() - started >= 0.45 and len(report.prepared) == 1
    no_leftovers(out)


def test_stale_lock_of_a_killed_process_is_taken_over(store):
    raw, out = store
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, json, os, sys, time\n"
        f"fd = os.open({str(out / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'started': 'long ago'}).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataError, match=f"process {holder.pid} \\(started long ago\\)"):
            prepare_dataset(raw, out, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK).is_file()  # the dead process's lock file is still there
    touch(raw_files(raw, "mm2", csv_ids(raw, "mm2")[0])["cine"])
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [f"mm2 {csv_ids(raw, 'mm2')[0]}"]
    no_leftovers(out)


# ------------------------------------------------------------------------------ defect 4: damaged arrays

def test_missing_or_truncated_arrays_are_redone(store):
    """Was: reuse trusted meta.json alone, so a deleted or truncated image.npy was 'reused unchanged'."""
    raw, out = store
    data = contents(out)
    deleted, truncated, labels = csv_ids(raw, "mm1")[0], csv_ids(raw, "mm1")[4], csv_ids(raw, "mm2")[2]
    folders = {s: current_folder(out, d, s) for d, s in (("mm1", deleted), ("mm1", truncated), ("mm2", labels))}
    (folders[deleted] / "image.npy").unlink()
    image = folders[truncated] / "image.npy"
    image.write_bytes(image.read_bytes()[:-100])
    (folders[labels] / "labels.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"image\.npy.*(missing|truncated).*sspcmr prepare` again"):
        PreparedDataset(out)  # the reader notices too, naming the file
    report = prepare_dataset(raw, out, progress=False)
    damaged = sorted([f"mm1 {deleted}", f"mm1 {truncated}", f"mm2 {labels}"])
    assert sorted(report.prepared) == damaged and sorted(report.repaired) == damaged
    assert "missing" in report.damage[f"mm1 {deleted}"] and "truncated" in report.damage[f"mm1 {truncated}"]
    assert_contents(out, data)


def test_verify_rehashes_arrays(store):
    raw, out = store
    data = contents(out)
    subject = csv_ids(raw, "mm1")[2]
    image = current_folder(out, "mm1", subject) / "image.npy"
    content = bytearray(image.read_bytes())
    content[-1] ^= 0xFF  # same size, same header: only the content differs
    image.write_bytes(bytes(content))
    report = prepare_dataset(raw, out, progress=False)
    assert report.prepared == [] and report.repaired == []  # headers and sizes only: not noticed
    report = prepare_dataset(raw, out, progress=False, verify=True)
    assert report.prepared == report.repaired == [f"mm1 {subject}"] and "sha256" in report.damage[f"mm1 {subject}"]
    assert_contents(out, data)


# ------------------------------------------------------------------------------ SIGKILL at any point

KILLER = r"""
import os, signal, sys
import sspcmr.data.prepare.run as run

point, calls = sys.argv[1], []
real_prepare, real_write = run.prepare_subject, run.atomic_write_bytes

def prepare_subject(subject, folder, *rule):
    meta = real_prepare(subject, folder, *rule)
    calls.append(subject.name)
    if point == "staging" and len(calls) == 3:  # three subjects staged, the fourth not yet
        os.kill(os.getpid(), signal.SIGKILL)
    return meta

def atomic_write_bytes(path, write):
    if path.name == {"tables": "slices.csv", "switch": "manifest.json"}.get(point):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(path, write)

run.prepare_subject, run.atomic_write_bytes = prepare_subject, atomic_write_bytes
from sspcmr.commands.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("point", ["staging", "tables", "switch"])
def test_sigkill_leaves_the_previous_store(point, store):
    """SIGKILL while staging subjects, between two tables, and just before the manifest switch."""
    raw, out = store
    for path in sorted(raw.rglob("*.nii.gz")):
        touch(path)  # every subject to prepare again
    subject = csv_ids(raw, "mm1")[3]
    set_csv_value(raw, "mm1", subject, "Pathology", "DCM")
    before, data = snapshot(out), contents(out)
    result = subprocess.run([sys.executable, "-c", KILLER, point, "prepare", "--raw", str(raw), "--out", str(out),
                             "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert list(out.glob(".staging-*"))  # killed mid-run, it left its staging
    after = snapshot(out)
    assert {path: after.get(path) for path in before} == before  # the previous data set, byte for byte
    named = set(PreparedDataset(out).files["folder"]) | {table(out, "x").parent.relative_to(out).as_posix()}
    extra = [path for path in after if path not in before]
    assert all(path.startswith(".staging-") or path.startswith("tables/") or path.startswith("subjects/")
               for path in extra), extra  # and what the killed run had written so far, which nothing names:
    assert not any("/".join(path.split("/")[:4 if path.startswith("subjects/") else 2]) in named for path in extra)
    assert_contents(out, data)
    report = prepare_dataset(raw, out, progress=False)  # the next run cleans up and completes
    assert len(report.prepared) == len(data[0]) and report.reused == []
    no_leftovers(out)
    assert len(list((out / "tables").iterdir())) == 1
    ds = PreparedDataset(out)
    assert sorted(p.relative_to(out).as_posix() for p in (out / "subjects").glob("*/*/*")) == sorted(
        ds.files["folder"])  # the killed run's version folders are gone, the current ones kept
    assert ds.subjects.set_index("SubjectID").loc[subject, "Pathology"] == "DCM"
    for i, (image, labels) in enumerate(data[1]):
        np.testing.assert_array_equal(ds.image(i), image)
        np.testing.assert_array_equal(ds.labels(i), labels)
