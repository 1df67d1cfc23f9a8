"""``sspcmr evaluate``: a checkpoint scored through the CLI equals ``Trainer.test`` of the same model,
on the grid the model was trained with; bad checkpoints give a one-line error."""

from __future__ import annotations

import lightning as L
import pandas as pd
import pytest

from sspcmr.commands.main import main
from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import Segmentation


@pytest.fixture(scope="module")
def checkpoint(prepared_tiny, tmp_path_factory):
    root, split = prepared_tiny
    out = tmp_path_factory.mktemp("evaluate")
    data = CineDataModule(str(root), str(split), mode="segment", output_size=64, output_spacing=4.0, batch_size=4,
                          num_workers=0)
    model = Segmentation(channels=[8, 16, 32], output_size=64, output_spacing=4.0, log_images=False,
                         results_dir=str(out / "direct"))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    path = out / "model.ckpt"
    trainer.save_checkpoint(path)
    trainer.test(model, datamodule=data)
    return path, out


def test_evaluate_reproduces_trainer_test(prepared_tiny, checkpoint):
    root, split = prepared_tiny
    path, out = checkpoint
    code = main(["evaluate", "--ckpt", str(path), "--prepared", str(root), "--split", str(split),
                 "--out", str(out / "cli"), "--accelerator", "cpu", "--workers", "0"])
    assert code == 0
    direct = pd.read_csv(out / "direct" / "volumes.csv", dtype={"subject": str})
    cli = pd.read_csv(out / "cli" / "volumes.csv", dtype={"subject": str})
    pd.testing.assert_frame_equal(direct, cli)  # same grid (64 px, 4 mm) read back from the checkpoint
    assert (out / "cli" / "summary.txt").is_file()


def test_evaluate_phase_filter(prepared_tiny, checkpoint):
    root, split = prepared_tiny
    path, out = checkpoint
    assert main(["evaluate", "--ckpt", str(path), "--prepared", str(root), "--split", str(split),
                 "--out", str(out / "es"), "--eval-phases", "ES", "--accelerator", "cpu", "--workers", "0"]) == 0
    table = pd.read_csv(out / "es" / "volumes.csv")
    assert set(table["phase"]) == {"ES"}


def test_evaluate_bad_checkpoint_is_one_line(prepared_tiny, tmp_path, capsys):
    root, split = prepared_tiny
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    code = main(["evaluate", "--ckpt", str(bad), "--prepared", str(root), "--split", str(split),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.ckpt" in err and "Traceback" not in err


def test_segment_writes_labels_on_the_input_grid(tiny_dataset, checkpoint, tmp_path):
    import nibabel as nib
    import numpy as np

    path, _ = checkpoint
    raw = sorted((tiny_dataset[0] / "MnM2" / "dataset").glob("*/*_SA_CINE.nii.gz"))[0]
    assert main(["segment", "--ckpt", str(path), "--input", str(raw), "--out", str(tmp_path)]) == 0
    written = nib.load(tmp_path / raw.name.replace(".nii.gz", "_pred.nii.gz"))
    source = nib.load(raw)
    assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    assert written.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 3}
