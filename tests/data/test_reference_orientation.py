"""The reference's reorientation heuristics (docs/reference.md#reformatting): golden cases worked out by hand,
properties of the whole rule, ``sspcmr prepare --orientation reference`` and ``sspcmr orientation-check``."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sspcmr.commands.main import main
from sspcmr.data.errors import DataError
from sspcmr.data.prepare import prepare_dataset
from sspcmr.data.prepare.orientation_check import COLUMNS, in_plane_relation
from sspcmr.data.preprocessing import Reorientation, apply_reorientation, crop_affine
from sspcmr.data.preprocessing.reference_orientation import (
    axis_codes,
    closest_canonical,
    flipped,
    left_handed,
    mnms2_steps,
    mnms_steps,
    reference_reorientation,
    swapped,
)
from sspcmr.data.store import PreparedDataset

from .prepare.helpers import check_subject_arrays, copy_raw

# Final codes by the world axis nibabel assigns the slice axis (0: R/L, 1: A/P, 2: S/I), worked out by hand from
# the steps: e.g. M&Ms, slice on S: canonical RAS, swap ARS, flip all PLI (right-handed), PLI fix-up RPI.
EXPECTED_CODES = {"mm1": {0: "IPL", 1: "ILA", 2: "RPI"}, "mm2": {0: "IAR", 1: "ILA", 2: "ALS"}}
IDENTITY = np.eye(4)


def _affine(columns: list[list[float]]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(columns, dtype=float).T  # one list per array axis
    affine[:3, 3] = (12.0, -30.0, 7.5)  # the translation plays no part
    return affine


# ------------------------------------------------------------------------------------------- golden cases

def test_identity_affine():
    # M&Ms: RAS -> swap ARS (left-handed) -> flip all PLI (right-handed: no slice flip) -> PLI: swap LPI, flip
    # the first RPI. Relative to the input: axis 0 kept, axes 1 and 2 reversed.
    assert axis_codes(IDENTITY, flipped(swapped(closest_canonical(IDENTITY)), (0, 1, 2))) == "PLI"
    ops = reference_reorientation(IDENTITY, "mm1")
    assert ops == Reorientation(False, (False, True, True)) and axis_codes(IDENTITY, ops) == "RPI"
    # M&Ms-2: ARS -> flip all but the A axis: ALI, left-handed and not PRI -> flip the slices: ALS.
    ops = reference_reorientation(IDENTITY, "mnms2")
    assert ops == Reorientation(True, (False, True, False)) and axis_codes(IDENTITY, ops) == "ALS"


def test_left_handed_input_affine():
    # LAS (det -1): canonical flips axis 0 (RAS), then as for the identity: the same world codes, other flips.
    las = _affine([[-1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert left_handed(las)
    assert reference_reorientation(las, "mm1") == Reorientation(False, (True, True, True))
    assert axis_codes(las, reference_reorientation(las, "mm1")) == "RPI"
    # M&Ms-2: swap -> ARS (axis 1 is the flipped input axis 0) -> flip axes 1, 2: ALI -> left-handed: ALS.
    assert reference_reorientation(las, "mm2") == Reorientation(True, (False, False, False))


def test_mnms_left_handed_branch_flips_the_slices():
    # Slice axis along A: canonical RSA (det -1) -> swap SRA -> flip all ILP (det -1): flip the slices -> ILA.
    rsa = _affine([[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    ops = swapped(closest_canonical(rsa))
    assert axis_codes(rsa, flipped(ops, (0, 1, 2))) == "ILP" and left_handed(rsa, flipped(ops, (0, 1, 2)))
    assert mnms_steps(rsa, ops) == Reorientation(True, (True, True, False))
    assert axis_codes(rsa, reference_reorientation(rsa, "mm1")) == "ILA"


def test_mnms_pli_branch_on_an_oblique_dicom_style_affine():
    # LPS-style columns (-x, -y, z), tilted: canonical RAS, and the M&Ms steps pass through PLI to RPI.
    tilt = np.radians(20.0)
    oblique = _affine([[-np.cos(tilt), 0, np.sin(tilt)], [0, -1.4, 0], [np.sin(tilt) * 8, 0, np.cos(tilt) * 8]])
    assert axis_codes(oblique) == "LPS" and axis_codes(oblique, closest_canonical(oblique)) == "RAS"
    assert axis_codes(oblique, flipped(swapped(closest_canonical(oblique)), (0, 1, 2))) == "PLI"
    ops = reference_reorientation(oblique, "mm1")
    assert ops == Reorientation(False, (True, False, True)) and axis_codes(oblique, ops) == "RPI"


def test_mnms2_pri_branch_swaps_and_flips_literally():
    """The PRI branch, entered from PLS codes (unreachable after the canonical step, which leaves A, never P,
    on the A/P axis; see the next test): flipping all but the P axis gives PRI (left-handed); the branch swaps
    to RPI and flips each in-plane axis whose code differs from P, R position by position: LAI, not a slice flip."""
    entering = Reorientation(True, (True, True, False))  # identity axes R, A, S -> P, L, S
    assert axis_codes(IDENTITY, entering) == "PLS"
    assert axis_codes(IDENTITY, flipped(entering, (1, 2))) == "PRI" and left_handed(IDENTITY, flipped(entering, (1, 2)))
    ops = mnms2_steps(IDENTITY, entering)
    assert axis_codes(IDENTITY, ops) == "LAI" and ops == Reorientation(False, (True, False, True))
    assert not left_handed(IDENTITY, ops)


def test_result_depends_on_the_slice_axis_world_axis_only():
    """Random rotations, spacings and handedness, and every vendor re-layout of them (in-plane swap, flips): the
    final codes follow the hand-worked table, the result is right-handed and the PRI branch is never entered."""
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(60):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        affine = np.eye(4)
        affine[:3, :3] = rotation * rng.uniform(0.6, 10.0, size=3)
        slice_world = int(nib.orientations.io_orientation(affine)[2, 0])
        layout = Reorientation(bool(rng.integers(2)), tuple(bool(b) for b in rng.integers(0, 2, size=3)))
        _, relaid = apply_reorientation(np.zeros((4, 5, 3)), affine, layout)
        for dataset, table in EXPECTED_CODES.items():
            for candidate in (affine, relaid):
                ops = reference_reorientation(candidate, dataset)
                assert axis_codes(candidate, ops) == table[slice_world]
                assert not left_handed(candidate, ops)
        seen.add(slice_world)
    assert seen == {0, 1, 2}


def test_in_plane_relation_names_what_numpy_does():
    image = np.arange(12.0).reshape(3, 4, 1)
    named = {"same": lambda a: a, "rotated 180": lambda a: a[::-1, ::-1], "flipped upside down": lambda a: a[::-1],
             "mirrored left-right": lambda a: a[:, ::-1], "transposed": lambda a: a.swapaxes(0, 1),
             "anti-transposed": lambda a: a[::-1, ::-1].swapaxes(0, 1),
             "rotated 90 clockwise": lambda a: np.rot90(a, -1), "rotated 90 counterclockwise": lambda a: np.rot90(a)}
    found = set()
    for a_code in range(8):
        for r_code in range(8):
            a = Reorientation(bool(a_code & 4), (bool(a_code & 1), bool(a_code & 2), False))
            r = Reorientation(bool(r_code & 4), (bool(r_code & 1), bool(r_code & 2), False))
            name = in_plane_relation(a, r)
            moved = named[name](apply_reorientation(image, None, a)[0])
            np.testing.assert_array_equal(moved, apply_reorientation(image, None, r)[0])
            found.add(name)
    assert found == set(named)


# ------------------------------------------------------------------------------------------- prepare, check

@pytest.fixture(scope="module")
def reference_store(tiny_dataset, tmp_path_factory) -> tuple[Path, Path]:
    raw = tiny_dataset[0]
    out = tmp_path_factory.mktemp("reference_store") / "prepared"
    report = prepare_dataset(raw, out, progress=False, orientation="reference")
    assert report.orientation == "reference" and len(report.prepared) == 11
    return raw, out


def test_prepare_reference_follows_the_rule(reference_store):
    raw, out = reference_store
    ds = PreparedDataset(out)
    assert ds.manifest["orientation"] == "reference"
    for index, row in ds.subjects.iterrows():
        meta = ds.meta(index)
        assert meta["orientation"] == "reference"
        cine_path = Path(meta["sources"]["cine"])
        raw_affine = nib.load(cine_path).affine
        expected = reference_reorientation(crop_affine(raw_affine, tuple(slice(*c) for c in meta["crop"])),
                                           row["dataset"])
        assert meta["reorientation"] == expected.as_dict(), row["SubjectID"]
        # the stored affine's codes are the hand-worked ones for the raw slice axis' world axis
        slice_world = int(nib.orientations.io_orientation(raw_affine)[2, 0])
        stored = np.asarray(meta["affine"])
        assert "".join(nib.aff2axcodes(stored)) == EXPECTED_CODES[row["dataset"]][slice_world], row["SubjectID"]
        check_subject_arrays(raw, ds, index, row["dataset"], row["SubjectID"])  # arrays and world positions


def test_orientation_change_reprepares_and_never_mixes(reference_store, prepared_tiny, tmp_path):
    raw, _ = reference_store
    out = tmp_path / "prepared"
    prepare_dataset(raw, out, progress=False, orientation="reference")
    with pytest.raises(DataError, match="holds mm2 subjects prepared with the reference orientation"):
        prepare_dataset(raw, out, datasets=["mnms"], progress=False)
    assert json.loads((out / "manifest.json").read_text())["orientation"] == "reference"
    report = prepare_dataset(raw, out, progress=False)  # back to the default: every subject again
    assert len(report.prepared) == 11 and not report.reused
    ds, default = PreparedDataset(out), PreparedDataset(prepared_tiny[0])
    assert ds.manifest["orientation"] == "anatomical"
    assert all("orientation" not in ds.meta(i) for i in range(len(ds.subjects)))
    # byte-identical arrays and the same fingerprints as a store only ever prepared with the default
    assert list(ds.subjects["SubjectID"]) == list(default.subjects["SubjectID"])
    columns = ["fingerprint", "image_sha256", "labels_sha256"]
    pd.testing.assert_frame_equal(ds.files[columns].reset_index(drop=True),
                                  default.files[columns].reset_index(drop=True))


def test_orientation_check_command(reference_store, prepared_tiny, tmp_path, capsys):
    raw, out = reference_store
    report = tmp_path / "report" / "orientation.csv"
    assert main(["orientation-check", "--raw", str(raw), "--out", str(report), "--quiet"]) == 0
    table = pd.read_csv(report, dtype={"subject": str})
    assert list(table.columns) == COLUMNS and len(table) == 11
    # the check agrees with what the two prepares did, subject by subject
    stores = PreparedDataset(out), PreparedDataset(prepared_tiny[0])
    for ds in stores:
        ds.subjects["key"] = ds.subjects["dataset"] + " " + ds.subjects["SubjectID"]
    reference = {k: stores[0].meta(i) for i, k in enumerate(stores[0].subjects["key"])}
    anatomical = {k: stores[1].meta(i) for i, k in enumerate(stores[1].subjects["key"])}
    for row in table.itertuples():
        key = f"{row.dataset} {row.subject}"
        flips = reference[key]["reorientation"]["flip"][2], anatomical[key]["reorientation"]["flip"][2]
        assert (row.slice_order == "same") == (flips[0] == flips[1]), key
        assert row.reference == "".join(nib.aff2axcodes(np.asarray(reference[key]["affine"]))), key
        assert row.anatomical == "".join(nib.aff2axcodes(np.asarray(anatomical[key]["affine"]))), key
        assert row.agree == (row.slice_order == "same" and row.in_plane == "same")
    printed = capsys.readouterr().out
    same = int((table["slice_order"] == "same").sum())
    assert f"total: slice order agrees in {same}/11" in printed


def test_orientation_check_bad_input(tiny_dataset, tmp_path, capsys):
    raw = copy_raw(tiny_dataset[0], tmp_path / "raw", datasets=("mm2",))
    assert main(["orientation-check", "--raw", str(raw), "--quiet"]) == 2  # default: both data sets
    assert "no MnM/ folder under" in capsys.readouterr().err
    assert main(["orientation-check", "--raw", str(raw), "--datasets", "mnms2", "--out", str(raw / "report.csv"),
                 "--quiet"]) == 2
    assert "must lie outside the raw folder" in capsys.readouterr().err and not (raw / "report.csv").exists()
    broken = raw / "MnM2" / "dataset" / "002" / "002_SA_CINE.nii.gz"
    broken.write_bytes(b"not a NIfTI file")
    assert main(["orientation-check", "--raw", str(raw), "--datasets", "mnms2", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "mm2 002" in error and str(broken) in error and "cannot read NIfTI header" in error
