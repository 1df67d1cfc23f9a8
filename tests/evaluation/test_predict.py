"""Predictions on the raw grid: the exact inverse of crop + reorientation, ``predict_nifti`` on raw 3D/4D
files, and the ``NiftiPredictionWriter`` of ``Segmentation.predict_step``."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import nibabel as nib
import numpy as np
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.data.datasets import VolumeDataset
from sspcmr.data.preprocessing import Reorientation, apply_reorientation, border_box, to_raw_grid
from sspcmr.data.store import PreparedDataset
from sspcmr.evaluation.native import labels_to_native
from sspcmr.evaluation.writer import PRED_SUFFIX, NiftiPredictionWriter
from sspcmr.inference.nifti import predict_nifti
from sspcmr.methods.segmentation import Segmentation

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py


def _raw_labels(meta: dict, phase: str) -> np.ndarray:
    """The subject's raw (X, Y, Z) ground truth of ``phase`` read from its source NIfTI files."""
    sources = meta["sources"]
    if meta["dataset"] == "mm1":  # <CODE>_sa_gt.nii.gz: 4D, labelled at ED and ES
        return np.asarray(nib.load(sources["labels"]).dataobj)[..., meta[phase.lower()]]
    return np.asarray(nib.load(sources[f"{phase.lower()}_gt"]).dataobj)  # <NNN>_SA_ED_gt.nii.gz


def _cine(meta: dict) -> nib.Nifti1Image:
    return nib.load(meta["sources"]["cine"])


class ConstantClass1(torch.nn.Module):
    """Logits favouring class 1 everywhere (as a one-element head list, like the U-Net)."""

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        logits = torch.zeros(image.shape[0], 4, *image.shape[-2:], dtype=image.dtype)
        logits[:, 1] = 5.0
        return [logits]


class Threshold(torch.nn.Module):
    """Class 1 where the standardised image exceeds 0.5: a deterministic function of the network input."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(image)
        return torch.cat([zeros, image - 0.5, zeros - 9, zeros - 9], dim=1)


def test_to_raw_grid_inverts_the_preparation_exactly(prepared_tiny):
    prepared = PreparedDataset(prepared_tiny[0])
    conventions = set()
    for index in range(len(prepared.subjects)):
        meta = prepared.meta(index)
        shape = _cine(meta).shape
        ops = meta["reorientation"]
        conventions.add((ops["swap_inplane"], *ops["flip"]))
        for label_index, phase in enumerate(("ED", "ES")):
            raw = _raw_labels(meta, phase)
            back = to_raw_grid(np.asarray(prepared.labels(index)[label_index]), meta, shape)
            assert back.shape == shape[:3] == raw.shape, meta["subject"]
            assert back.dtype == np.uint8
            np.testing.assert_array_equal(back, raw, err_msg=f"{meta['dataset']} {meta['subject']} {phase}")
    # The tiny data covers several vendor conventions: swapped and unswapped planes, several flip patterns.
    assert len(prepared.subjects) == 11
    assert len(conventions) >= 2, conventions


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("flips", list(itertools.product([False, True], repeat=3)))
def test_to_raw_grid_inverts_every_convention_with_a_crop(swap, flips):
    """Forward as ``prepare_subject`` (border crop, swap, flips) on zero-padded random data, then back."""
    rng = np.random.default_rng(0)
    raw = np.zeros((23, 19, 5, 3), dtype=np.int16)  # (X, Y, Z, T) cine with an asymmetric zero border
    raw[3:20, 2:12] = rng.integers(1, 100, size=(17, 10, 5, 3))
    labels = np.zeros((23, 19, 5, 2), dtype=np.uint8)
    labels[3:20, 2:12] = rng.integers(0, 4, size=(17, 10, 5, 2))
    box = border_box(raw)
    assert (box[0].start, box[0].stop, box[1].start, box[1].stop) == (3, 20, 2, 12)
    ops = Reorientation(swap, flips)
    prepared, _ = apply_reorientation(labels[box[0], box[1]], None, ops)
    stored = np.transpose(prepared, (3, 2, 0, 1))  # (2, Z, H, W) as labels.npy
    meta = {"crop": [[box[0].start, box[0].stop], [box[1].start, box[1].stop]], "reorientation": ops.as_dict()}
    for phase in range(2):
        np.testing.assert_array_equal(to_raw_grid(stored[phase], meta, raw.shape), labels[..., phase])


def test_predict_nifti_pads_a_zero_border_back(prepared_tiny, tmp_path):
    """A cine with zero padding: class 1 exactly over its non-zero box, 0 in the padding, input geometry kept."""
    _, meta = _first_subject(prepared_tiny, "mm1")
    cine = nib.load(meta["sources"]["cine"])
    data = np.asarray(cine.dataobj)
    padded = np.zeros((data.shape[0] + 7, data.shape[1] + 4, *data.shape[2:]), dtype=data.dtype)
    padded[5:5 + data.shape[0], 1:1 + data.shape[1]] = data
    source = tmp_path / "padded.nii.gz"
    nib.save(nib.Nifti1Image(padded, cine.affine, cine.header), str(source))
    out = nib.load(predict_nifti(ConstantClass1(), source, tmp_path / "padded_pred.nii.gz", 64, 4.0))
    expected = np.zeros(padded.shape, dtype=np.uint8)
    expected[5:5 + data.shape[0], 1:1 + data.shape[1]] = 1
    np.testing.assert_array_equal(np.asarray(out.dataobj), expected)
    np.testing.assert_allclose(out.affine, cine.affine, atol=1e-6)
    assert out.header.get_sform(coded=True)[1] == nib.load(source).header.get_sform(coded=True)[1]
    assert out.header.get_qform(coded=True)[1] == nib.load(source).header.get_qform(coded=True)[1]


def test_to_raw_grid_rejects_a_mismatched_shape(prepared_tiny):
    prepared = PreparedDataset(prepared_tiny[0])
    meta = prepared.meta(0)
    labels = np.asarray(prepared.labels(0)[0])
    shape = _cine(meta).shape
    with pytest.raises(ValueError, match="crop"):
        to_raw_grid(labels[:, :-1], meta, shape)
    with pytest.raises(ValueError, match="Z, H, W"):
        to_raw_grid(labels[0], meta, shape)


def _first_subject(prepared_tiny, dataset: str = "mm1") -> tuple[int, dict]:
    prepared = PreparedDataset(prepared_tiny[0])
    for index in range(len(prepared.subjects)):
        meta = prepared.meta(index)
        if meta["dataset"] == dataset:
            return index, meta
    raise AssertionError(f"no {dataset} subject")


@pytest.mark.parametrize("dataset", ["mm1", "mm2"])
def test_predict_nifti_writes_the_input_grid(prepared_tiny, tmp_path, dataset):
    _, meta = _first_subject(prepared_tiny, dataset)
    source = Path(meta["sources"]["cine"])
    cine = nib.load(source)
    out = predict_nifti(ConstantClass1(), source, tmp_path / "pred.nii.gz", output_size=64, output_spacing=4.0)
    written = nib.load(out)
    assert written.shape == cine.shape and len(cine.shape) == 4
    np.testing.assert_allclose(written.affine, cine.affine, atol=1e-6)
    assert written.get_data_dtype() == np.uint8
    labels = np.asarray(written.dataobj)
    assert labels.dtype == np.uint8
    # Class 1 exactly over the border-cropped box, zeros in the zero padding outside it.
    (r0, r1), (c0, c1) = meta["crop"]
    expected = np.zeros(cine.shape, dtype=np.uint8)
    expected[r0:r1, c0:c1] = 1
    np.testing.assert_array_equal(labels, expected)
    assert not list(tmp_path.glob(".*part*"))  # atomic write left no temporary file


def test_predict_nifti_matches_the_prepared_pipeline(prepared_tiny, tmp_path):
    """On a raw cine, predict_nifti reproduces `sspcmr test`'s inference on the prepared volume exactly."""
    root, split = prepared_tiny
    index, meta = _first_subject(prepared_tiny, "mm2")
    data = CineDataModule(str(root), str(split), mode="volumes", output_size=64, output_spacing=4.0, num_workers=0)
    data.setup("test")
    model = Threshold()
    source = Path(meta["sources"]["cine"])
    labels = np.asarray(nib.load(predict_nifti(model, source, tmp_path / "p.nii.gz", 64, 4.0)).dataobj)
    for phase in ("ED", "ES"):
        batch = data.resample(VolumeDataset(data.prepared, [(index, phase)])[0])
        native = batch[K.NATIVE_LABEL]
        pred = labels_to_native(model(batch[K.IMAGE]), batch[K.THETA], batch[K.SIZE], tuple(native.shape[-2:]))
        expected = to_raw_grid(pred.to(torch.uint8).numpy(), meta, labels.shape)
        frame = labels[..., meta[phase.lower()]]
        assert expected.any()
        assert np.mean(frame != expected) < 1e-3, phase  # measured 0; allows float rounding at the threshold


def test_predict_nifti_3d_and_wrong_dimensions(prepared_tiny, tmp_path):
    _, meta = _first_subject(prepared_tiny, "mm1")
    cine = nib.load(meta["sources"]["cine"])
    frame = np.asarray(cine.dataobj)[..., meta["ed"]]
    path3d = tmp_path / "frame.nii.gz"
    nib.save(nib.Nifti1Image(frame, cine.affine), str(path3d))
    out = nib.load(predict_nifti(ConstantClass1(), path3d, tmp_path / "frame_pred.nii.gz", 64, 4.0))
    assert out.shape == frame.shape
    np.testing.assert_allclose(out.affine, cine.affine, atol=1e-6)
    assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= {0, 1}

    for name, array in (("2d", frame[..., 0]), ("5d", np.asarray(cine.dataobj)[..., None, None])):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(array, cine.affine), str(path))
        with pytest.raises(ValueError, match="3D .* or 4D"):
            predict_nifti(ConstantClass1(), path, tmp_path / f"{name}_pred.nii.gz", 64, 4.0)


def test_writer_writes_one_4d_file_per_test_subject(prepared_tiny, tmp_path):
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode="segment", output_size=64, output_spacing=4.0, num_workers=0)
    writer = NiftiPredictionWriter(tmp_path / "pred")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[writer], enable_progress_bar=False,
                        enable_model_summary=False)
    torch.manual_seed(0)
    model = Segmentation(channels=[8, 16, 32], output_size=64, output_spacing=4.0, log_images=False)
    with torch.no_grad():  # head 0 favours class 1 everywhere: a known prediction (class 1 on the whole grid)
        model.net.heads[0].weight.zero_()
        model.net.heads[0].bias.copy_(torch.tensor([0.0, 5.0, 0.0, 0.0]))
    trainer.predict(model, datamodule=data, return_predictions=False)

    prepared = PreparedDataset(root)
    tests = data.subject_indices("test")
    assert len(tests) == 5
    files = sorted((tmp_path / "pred").iterdir())
    assert [p.name for p in files] == sorted(f"{prepared.meta(i)['subject']}{PRED_SUFFIX}" for i in tests)
    assert len(writer.written) == 5
    for index in tests:
        meta = prepared.meta(index)
        cine = _cine(meta)
        written = nib.load(tmp_path / "pred" / f"{meta['subject']}{PRED_SUFFIX}")
        assert written.shape == cine.shape and written.get_data_dtype() == np.uint8
        np.testing.assert_allclose(written.affine, cine.affine, atol=1e-6)
        labels = np.asarray(written.dataobj)
        (r0, r1), (c0, c1) = meta["crop"]
        expected = np.zeros(cine.shape, dtype=np.uint8)
        for frame in (meta["ed"], meta["es"]):  # class 1 over the crop box at ED and ES, zeros elsewhere
            expected[r0:r1, c0:c1, :, frame] = 1
        np.testing.assert_array_equal(labels, expected, err_msg=meta["subject"])


def test_writer_on_predict_step_outputs_directly(prepared_tiny, tmp_path):
    """Without a data module's eval_phases, a subject is written at the end of the epoch with what it has."""
    root, _ = prepared_tiny
    index, meta = _first_subject(prepared_tiny, "mm2")
    prepared = PreparedDataset(root)
    writer = NiftiPredictionWriter(tmp_path, data_dir=root)
    trainer = L.Trainer(accelerator="cpu", logger=False)  # no data module attached
    es = np.array(prepared.labels(index)[1])
    writer.write_on_batch_end(trainer, None, {"subject_index": index, "phase": "ES", "labels": torch.from_numpy(es),
                                              "dataset": "mm2", "subject": meta["subject"]}, None, None, 0)
    assert not writer.written
    writer.on_predict_epoch_end(trainer, None)
    labels = np.asarray(nib.load(writer.written[0]).dataobj)
    np.testing.assert_array_equal(labels[..., meta["es"]], _raw_labels(meta, "ES"))
    assert not np.delete(labels, meta["es"], axis=-1).any()


def test_predict_nifti_defaults_to_the_models_own_grid(prepared_tiny, tmp_path):
    """From Python, a model that knows its grid (as a Segmentation does) is run on it unless told otherwise."""
    _, meta = _first_subject(prepared_tiny, "mm2")
    source = Path(meta["sources"]["cine"])
    model = Threshold()
    model.output_size, model.output_spacing = 64, 4.0  # what Segmentation carries
    own = np.asarray(nib.load(predict_nifti(model, source, tmp_path / "own.nii.gz")).dataobj)
    given = np.asarray(nib.load(predict_nifti(model, source, tmp_path / "given.nii.gz", 64, 4.0)).dataobj)
    other = np.asarray(nib.load(predict_nifti(model, source, tmp_path / "other.nii.gz", 32, 8.0)).dataobj)
    np.testing.assert_array_equal(own, given)
    assert not np.array_equal(own, other)
