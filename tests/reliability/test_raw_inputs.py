"""Hostile raw inputs to ``sspcmr prepare``: NIfTI headers that claim absurd amounts of data, machine
failures while reading, symbolic links (and link loops) in the raw folder, hidden files, and subject
codes that would otherwise reach the file system as paths."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sspcmr.data.errors import DataError, MachineError
from sspcmr.data.prepare import PrepareFailed, nifti, prepare_dataset
from sspcmr.data.prepare.nifti import load_nifti, read_header_geometry
from sspcmr.data.prepare.sources import find_subjects

from ..data.prepare.helpers import MNMS2_CSV, copy_raw, csv_ids, hash_tree, read_csv_rows, write_csv_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw(tiny_dataset, tmp_path_factory) -> Path:
    """The public part of the session's tiny raw data set (8 M&Ms + 3 M&Ms-2 subjects); tests copy it."""
    return copy_raw(tiny_dataset[0], tmp_path_factory.mktemp("raw_inputs"))


# ------------------------------------------------------------------------------------------ lying headers

def _craft(path: Path, shape: tuple[int, ...], dtype=np.int16) -> Path:
    """A NIfTI file that is a header only (~60 bytes gzipped, 352 plain), whose header claims ``shape``."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    header.set_qform(np.diag([1.25, 1.25, 8.0, 1.0]), code=1)
    header.set_data_offset(352)  # voxels would start right after the header, as nibabel writes them
    block = header.binaryblock + b"\0" * 4  # extension flag; then no voxels at all
    path.write_bytes(gzip.compress(block) if path.name.endswith(".gz") else block)
    return path


# Runs load_nifti in a child process whose address space is capped at 1 GiB beyond what its imports
# took, so a reader that believes the header fails there (MemoryError) instead of loading this machine.
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from sspcmr.data.prepare.nifti import load_nifti

with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
limit = vm + 2**30 if hard == resource.RLIM_INFINITY else min(vm + 2**30, hard)
resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
results = []
for name in sys.argv[1:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        load_nifti(Path(name), "mm1 X", 4)
        kind, message = "ok", ""
    except BaseException as error:
        kind, message = type(error).__name__, str(error)
    results.append({"file": name, "type": kind, "message": message, "seconds": time.perf_counter() - start,
                    "grew_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024})
print(json.dumps(results))
"""


def _load_in_child(paths: list[Path]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_header_claiming_gigabytes_is_refused_at_once(tmp_path):
    """16000 x 16000 x 2 x 2 int16 in a 60-byte .nii.gz / 352-byte .nii: was 2 GB and seconds, then 'truncated'."""
    files = [_craft(tmp_path / f"A0S9V9_sa{suffix}", (16000, 16000, 2, 2)) for suffix in (".nii.gz", ".nii")]
    assert files[0].stat().st_size < 120 and files[1].stat().st_size == 352
    for result in _load_in_child(files):
        assert result["type"] == "DataError", result
        assert result["file"] in result["message"] and "16000 x 16000 x 2 x 2 int16" in result["message"], result
        assert "in-plane size 16000 exceeds 2048" in result["message"], result
        assert result["seconds"] < 2.0 and result["grew_mib"] < 100, result


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_header_beyond_cardiac_bounds_is_refused(tmp_path):
    claims = {
        "inplane": ((4096, 256, 10, 20), r"in-plane size 4096 exceeds 2048"),
        "slices": ((256, 256, 1000, 20), r"slice size 1000 exceeds 512"),
        "frames": ((256, 256, 10, 1000), r"frame size 1000 exceeds 512"),
        "voxels": ((2048, 2048, 200, 2), r"more than 536870912 voxels"),
        "bytes": ((1024, 1024, 64, 8), r"more than 4 GiB to decode"),  # 2**29 float64 voxels
    }
    files = [_craft(tmp_path / f"{name}_sa.nii.gz", shape, np.float64 if name == "bytes" else np.int16)
             for name, (shape, _) in claims.items()]
    for result, (shape, problem) in zip(_load_in_child(files), claims.values(), strict=True):
        assert result["type"] == "DataError", result
        claimed = " x ".join(map(str, shape))
        assert f"header claims {claimed}" in result["message"] and problem in result["message"], result
        assert result["seconds"] < 2.0 and result["grew_mib"] < 100, result


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_truncated_file_is_refused_without_reading(tmp_path):
    """A header within bounds (512 x 512 x 32 x 32 int16 = 512 MiB) over no data: refused from the file's
    size (.nii) or the gzip trailer (.nii.gz), not by allocating 512 MiB and reading."""
    files = [_craft(tmp_path / f"A0S9V9_sa{suffix}", (512, 512, 32, 32)) for suffix in (".nii.gz", ".nii")]
    for result in _load_in_child(files):
        assert result["type"] == "DataError", result
        assert result["file"] in result["message"], result
        assert "truncated or corrupt file: the header claims 512 x 512 x 32 x 32 int16" in result["message"], result
        assert "536871264 bytes with the header" in result["message"], result
        assert result["seconds"] < 1.0 and result["grew_mib"] < 100, result


def test_truncated_file_is_not_read(raw, tmp_path, monkeypatch):
    """The size check comes before any voxel is read (nibabel is never asked for the voxels)."""
    cine = raw / "MnM" / "dataset" / csv_ids(raw, "mm1")[0] / f"{csv_ids(raw, 'mm1')[0]}_sa.nii.gz"
    plain = tmp_path / "cut_sa.nii"
    image = nib.load(str(cine))
    nib.save(image, str(plain))
    plain.write_bytes(plain.read_bytes()[:-100])
    gz = tmp_path / "cut_sa.nii.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))

    def never(image):
        raise AssertionError("voxels were read")

    monkeypatch.setattr(nifti, "_read_array", never)
    for path in (plain, gz):
        with pytest.raises(DataError, match=r"truncated or corrupt file: the header claims .* holds \d+") as caught:
            load_nifti(path, "mm1 X", 4)
        assert caught.value.file == str(path)


def test_multi_member_gzip_is_not_over_refused(raw, tmp_path):
    """ISIZE is only the last member's size: a valid two-member .nii.gz must still load (counted instead)."""
    cine = raw / "MnM" / "dataset" / csv_ids(raw, "mm1")[0] / f"{csv_ids(raw, 'mm1')[0]}_sa.nii.gz"
    data = gzip.decompress(cine.read_bytes())
    two = tmp_path / "two_sa.nii.gz"
    two.write_bytes(gzip.compress(data[: len(data) // 2]) + gzip.compress(data[len(data) // 2:]))
    assert int.from_bytes(two.read_bytes()[-4:], "little") < len(data) // 2 + 1
    array, _ = load_nifti(two, "mm1 X", 4)
    np.testing.assert_array_equal(array, load_nifti(cine, "mm1 X", 4)[0])


def test_header_beyond_available_memory_is_refused(raw, monkeypatch):
    """A plausible cine that does not fit in the memory available now: the machine's limit (the run aborts),
    never a reason to call the subject invalid."""
    cine = raw / "MnM" / "dataset" / csv_ids(raw, "mm1")[0] / f"{csv_ids(raw, 'mm1')[0]}_sa.nii.gz"
    monkeypatch.setattr(nifti, "available_memory", lambda: 2**20)
    with pytest.raises(MachineError, match=r"header claims \d+ x \d+ x \d+ x \d+ \w+ voxels .*, more than 50% of "
                                           r"the 1 MiB of memory available") as caught:
        load_nifti(cine, "mm1 X", 4)
    assert caught.value.path == str(cine)


def test_memory_error_while_reading_is_a_machine_failure_naming_the_file(raw, monkeypatch):
    cine = raw / "MnM" / "dataset" / csv_ids(raw, "mm1")[0] / f"{csv_ids(raw, 'mm1')[0]}_sa.nii.gz"

    def exhausted(image):
        raise MemoryError

    monkeypatch.setattr(nifti, "_read_array", exhausted)
    with pytest.raises(MachineError, match=r"header claims \d+ x .*; out of memory") as caught:
        load_nifti(cine, "mm1 X", 4)
    assert caught.value.path == str(cine)


# ------------------------------------------------------------------------------------------ machine failures

@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO])
def test_machine_failure_while_reading_aborts(raw, monkeypatch, code):
    """An OSError with a machine errno is the machine's (MachineError), never 'truncated or corrupt file'."""
    cine = raw / "MnM2" / "dataset" / "001" / "001_SA_CINE.nii.gz"
    real_load = nib.load

    def failing_load(name, *args, **kwargs):
        raise OSError(code, os.strerror(code), name)

    monkeypatch.setattr(nib, "load", failing_load)
    for read in (lambda: load_nifti(cine, "mm2 001", 4), lambda: read_header_geometry(cine, "mm2 001")):
        with pytest.raises(MachineError, match=rf"reading {cine} failed: {os.strerror(code)}"):
            read()
    monkeypatch.setattr(nib, "load", real_load)

    def failing_read(image):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(nifti, "_read_array", failing_read)
    with pytest.raises(MachineError, match=rf"reading {cine} failed"):
        load_nifti(cine, "mm2 001", 4)

    def garbled_read(image):  # no errno: the file's fault
        raise OSError("Expected 100 bytes, got 3 bytes")

    monkeypatch.setattr(nifti, "_read_array", garbled_read)
    with pytest.raises(DataError, match=r"truncated or corrupt file: Expected 100 bytes"):
        load_nifti(cine, "mm2 001", 4)


# ------------------------------------------------------------------------------------------ symbolic links

def _all_ids(raw: Path) -> list[str]:
    return [f"mm1 {s}" for s in csv_ids(raw, "mm1")] + [f"mm2 {s}" for s in csv_ids(raw, "mm2")]


def _linked_layout(raw: Path, root: Path) -> Path:
    """A raw folder whose MnM2 folder, MnM/dataset folder, one M&Ms and one M&Ms-2 subject folder and
    one subject's files are symbolic links, with link loops (to an ancestor) inside."""
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(parents=True)
    linked = copy_raw(raw, root / "raw")
    shutil.move(linked / "MnM2", elsewhere / "MnM2")
    (linked / "MnM2").symlink_to(elsewhere / "MnM2", target_is_directory=True)  # the whole data set folder
    shutil.move(linked / "MnM" / "dataset", elsewhere / "dataset")
    (linked / "MnM" / "dataset").symlink_to(elsewhere / "dataset", target_is_directory=True)
    first, second, third = csv_ids(raw, "mm1")[:3]
    shutil.move(elsewhere / "dataset" / first, elsewhere / first)  # a subject folder linked from elsewhere
    (elsewhere / "dataset" / first).symlink_to(elsewhere / first, target_is_directory=True)
    shutil.move(elsewhere / "MnM2" / "dataset" / "002", elsewhere / "002")
    (elsewhere / "MnM2" / "dataset" / "002").symlink_to(Path("..", "..", "002"), target_is_directory=True)
    files = elsewhere / "files"  # a subject whose files are links
    files.mkdir()
    for image in sorted((elsewhere / "dataset" / second).iterdir()):
        shutil.move(image, files / image.name)
        image.symlink_to(files / image.name)
    # loops: a subject folder linking to its dataset folder, and the dataset folder to the raw folder
    (elsewhere / "dataset" / third / "loop").symlink_to(Path(".."), target_is_directory=True)
    (elsewhere / "dataset" / "raw_again").symlink_to(linked, target_is_directory=True)
    (elsewhere / "MnM2" / "dataset" / "001" / "up").symlink_to(elsewhere / "MnM2", target_is_directory=True)
    return linked


def test_symlinked_folders_and_files_are_followed(raw, tmp_path):
    linked = _linked_layout(raw, tmp_path)
    subjects, problems = find_subjects(linked, ("mm1", "mm2"))
    assert problems == []
    assert sorted(s.name for s in subjects) == sorted(_all_ids(raw))
    by_name = {s.name: s for s in subjects}
    first = csv_ids(raw, "mm1")[0]
    assert by_name[f"mm1 {first}"].files["cine"] == linked / "MnM" / "dataset" / first / f"{first}_sa.nii.gz"
    assert all(path.is_file() for s in subjects for path in s.files.values())

    # and through a whole prepare run (the raw folder, links and all, unchanged)
    before = hash_tree(tmp_path / "elsewhere")
    out = tmp_path / "out"
    report = prepare_dataset(linked, out, progress=False)
    assert sorted(report.prepared) == sorted(_all_ids(raw)) and report.invalid == []
    assert sorted(p.name for p in (out / "subjects" / "mm1").iterdir()) == sorted(csv_ids(raw, "mm1"))
    assert hash_tree(tmp_path / "elsewhere") == before


def test_hidden_files_are_ignored(raw, tmp_path):
    """macOS resource forks (``._<name>``), ``.DS_Store``, a hidden folder holding a stray subject and a
    hidden ``._info.csv`` beside the only visible CSV: none is taken for data."""
    hidden = copy_raw(raw, tmp_path / "raw")
    dataset = hidden / "MnM" / "dataset"
    first, second = csv_ids(raw, "mm1")[:2]
    for subject in (first, second):
        (dataset / subject / f"._{subject}_sa.nii.gz").write_bytes(b"\0\5\26\7" + b"\0" * 60)
        (dataset / subject / f"._{subject}_sa_gt.nii.gz").write_bytes(b"\0\5\26\7" + b"\0" * 60)
    (dataset / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (hidden / "MnM2" / "dataset" / "003" / "._003_SA_CINE.nii.gz").write_bytes(b"\0\5\26\7")
    (dataset / ".Trashes" / "ZZZ999").mkdir(parents=True)
    shutil.copy(dataset / first / f"{first}_sa.nii.gz", dataset / ".Trashes" / "ZZZ999" / "ZZZ999_sa.nii.gz")
    (hidden / "MnM2" / MNMS2_CSV).rename(hidden / "MnM2" / "info.csv")
    (hidden / "MnM2" / "._info.csv").write_bytes(b"\0\5\26\7 not a csv")
    subjects, problems = find_subjects(hidden, ("mm1", "mm2"))
    assert [str(p) for p in problems] == []
    assert sorted(s.name for s in subjects) == sorted(_all_ids(raw))
    report = prepare_dataset(hidden, tmp_path / "out", progress=False)
    assert sorted(report.prepared) == sorted(_all_ids(raw)) and report.invalid == []


def test_symlink_loop_alone_terminates(raw, tmp_path):
    """A folder linking to itself and one linking to an ancestor: listed once each, no hang, no error."""
    looped = copy_raw(raw, tmp_path / "raw", ("mm1",))
    first = csv_ids(raw, "mm1")[0]
    (looped / "MnM" / "dataset" / first / "self").symlink_to(Path("."), target_is_directory=True)
    (looped / "MnM" / "dataset" / "up").symlink_to(looped / "MnM", target_is_directory=True)
    (looped / "MnM" / "dataset" / "dangling").symlink_to(tmp_path / "nowhere")
    (looped / "MnM" / "dataset" / "knot").symlink_to(Path("knot"))
    subjects, problems = find_subjects(looped, ("mm1",))
    assert problems == [] and sorted(s.subject_id for s in subjects) == sorted(csv_ids(raw, "mm1"))


# ------------------------------------------------------------------------------------------ subject codes

def _add_rows(raw: Path, codes: list[str]) -> None:
    header, rows = read_csv_rows(raw, "mm1")
    column = header.index("External code")
    extra = []
    for code in codes:
        row = list(rows[0])
        row[column] = code
        extra.append(row)
    write_csv_rows(raw, "mm1", header, rows + extra)


def test_subject_codes_never_become_paths(raw, tmp_path):
    """CSV codes '..', 'a/b', '..x' (with a folder '..x' holding '..x_sa.nii.gz'), 'a\\b', a code with a
    newline, and a file named '.._sa.nii.gz': each an invalid row, none reaching the file system."""
    bad = copy_raw(raw, tmp_path / "raw", ("mm1",))
    codes = ["..", "a/b", "..x", "a\\b", "x\ny", "."]
    _add_rows(bad, codes)
    source = csv_ids(raw, "mm1")[0]
    dataset = bad / "MnM" / "dataset"
    for folder, code in (("..x", "..x"), ("dots", ".."), ("dot", "."), ("a", "b"), ("a\\b", "a\\b")):
        (dataset / folder).mkdir(exist_ok=True)
        for part in ("sa", "sa_gt"):
            shutil.copy(dataset / source / f"{source}_{part}.nii.gz", dataset / folder / f"{code}_{part}.nii.gz")
    (dataset / "a" / "b_sa.nii.gz").unlink()  # only 'a/b' as a whole could match
    (dataset / "a" / "b_sa_gt.nii.gz").unlink()

    subjects, problems = find_subjects(bad, ("mm1",))
    assert sorted(s.subject_id for s in subjects) == sorted(csv_ids(raw, "mm1"))
    assert len(problems) == len(codes), [str(p) for p in problems]
    for problem, code in zip(problems, codes, strict=True):
        assert f"subject code {code!r} is not a plain name" in str(problem), str(problem)
        assert "\n" not in str(problem)

    before = hash_tree(bad)
    out = tmp_path / "out"
    with pytest.raises(PrepareFailed, match=rf"{len(codes)} invalid subject\(s\)"):
        prepare_dataset(bad, out, datasets=["mnms"], progress=False)
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    report = prepare_dataset(bad, out, datasets=["mnms"], skip_invalid=True, progress=False)
    assert sorted(report.prepared) == sorted(f"mm1 {s}" for s in csv_ids(raw, "mm1"))
    assert len(report.invalid) == len(codes) and all("is not a plain name" in e.problem for e in report.invalid)
    assert sorted(p.name for p in (out / "subjects" / "mm1").iterdir()) == sorted(csv_ids(raw, "mm1"))
    assert sorted(p.name for p in (out / "subjects").iterdir()) == ["mm1"]
    assert hash_tree(bad) == before
