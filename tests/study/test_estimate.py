"""``sspcmr study --estimate``: FLOP counts against the convolution formula, the step arithmetic of Lightning's
epochs, the GPU-hour arithmetic, the reference slice counts, and the command on the smoke study."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from sspcmr.commands.main import main
from sspcmr.methods import Segmentation
from sspcmr.models import UNet, UNetConfig
from sspcmr.study import flops as flops_module
from sspcmr.study.config import load_study
from sspcmr.study.estimate import gpu_hours
from sspcmr.study.flops import count_flops, count_step_flops
from sspcmr.study.gpus import GPUS, peak_flops
from sspcmr.study.grid import Run, find_run
from sspcmr.study.run_profile import given_precision
from sspcmr.study.runner import StudyRunner
from sspcmr.study.schedule import TrainerLimits, training_schedule
from sspcmr.study.slice_counts import parse_slice_overrides, reference_counts

ROOT = Path(__file__).resolve().parents[2]

# The 2-stage U-Net (channels 8, 16) at 32 px, layer by layer: (C_in, C_out, kernel, side of the grid the
# kernel slides over). A conv costs 2 C_in C_out k^2 per output pixel; the transposed conv (k 2, stride 2)
# 2 C_in C_out k^2 per *input* pixel (16 x 16), the same products counted from the other side.
TINY_LAYERS = [
    (1, 8, 3, 32), (8, 8, 3, 32),  # encoder stage 0
    (8, 16, 3, 16), (16, 16, 3, 16),  # encoder stage 1 (stride 2 into 16 x 16)
    (16, 8, 2, 16),  # transposed conv 16 x 16 -> 32 x 32
    (16, 8, 3, 32), (8, 8, 3, 32),  # decoder block on [upsampled, skip]
    (8, 4, 1, 32),  # the single head (num_heads -1 with 2 stages), 1 x 1
]
FORWARD = sum(2 * cin * cout * k * k * side * side for cin, cout, k, side in TINY_LAYERS)
# Backward: every conv computes its weight gradient and its input gradient, each as many FLOPs as its forward,
# except the first, whose input (the image) needs no gradient.
FIRST = 2 * 1 * 8 * 3 * 3 * 32 * 32
TRAIN = 3 * FORWARD - FIRST


@pytest.fixture(autouse=True)
def _threads(one_cpu_thread):
    yield


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_unet_flops_equal_the_convolution_formula_and_scale_with_the_batch(device):
    net = UNet(UNetConfig(channels=(8, 16))).to(device)
    for batch in (2, 4):
        x = torch.zeros(batch, 1, 32, 32, device=device)
        assert count_flops(lambda: net(x)) == batch * FORWARD  # noqa: B023
        assert count_flops(lambda: sum(o.sum() for o in net(x)).backward()) == batch * TRAIN  # noqa: B023
    assert FORWARD == 6_963_200  # the formula itself, worked by hand


def tiny_segmentation() -> Segmentation:
    return Segmentation(channels=[8, 16], output_size=32, output_spacing=3.0, log_images=False)


def test_a_real_training_and_validation_step_count_the_network(monkeypatch):
    counted = count_step_flops(tiny_segmentation, batch_size=4, val_batch_size=8, labelled=True)
    assert counted.train_per_batch == 4 * TRAIN  # forward and backward; the loss adds no conv or matmul
    assert counted.val_per_sample == FORWARD
    assert counted.views == "1x32px"
    # Forced off the meta device, the CPU count at 1 slice scaled to 4 gives the same.
    real = flops_module._train_step

    def no_meta(module, batch_size, labelled, device):
        if device == "meta":
            raise NotImplementedError("needs data")
        return real(module, batch_size, labelled, device)

    monkeypatch.setattr(flops_module, "_train_step", no_meta)
    fallback = count_step_flops(tiny_segmentation, batch_size=4, val_batch_size=8, labelled=True)
    assert fallback.train_per_batch == 4 * TRAIN
    assert fallback.counted_on == "cpu, batch 1 x 4"


def test_steps_follow_lightning_epochs_and_the_reference_counts():
    # docs/reference.md#optimisation: iterations per epoch 210 (baseline, all), 7 (nr10), 404, 1415, 707.
    for slices, batch, per_epoch in ((6738, 32, 210), (231, 32, 7), (90618, 224, 404), (90618, 64, 1415),
                                     (90618, 128, 707)):
        assert training_schedule(slices, batch, 10, 10, TrainerLimits(max_epochs=3)).steps_per_epoch == per_epoch
    plan = training_schedule(6738, 32, 1664, 128, TrainerLimits(max_epochs=1000))
    assert (plan.epochs, plan.steps, plan.batches, plan.val_passes) == (1000, 210_000, 210_000, 1000)
    assert plan.val_slices == 1000 * 1664 + 2 * 128  # every epoch, plus the sanity check's 2 batches
    capped = training_schedule(6738, 32, 1664, 128, TrainerLimits(max_epochs=1000, max_steps=1000))
    assert (capped.epochs, capped.steps, capped.batches, capped.val_passes) == (5, 1000, 1000, 4)
    assert training_schedule(6738, 32, 0, 1, TrainerLimits(max_epochs=1, limit_train_batches=5)).batches == 5
    assert training_schedule(6738, 32, 0, 1, TrainerLimits(max_epochs=1, limit_train_batches=0.5)).batches == 105
    assert training_schedule(6738, 32, 0, 1, TrainerLimits(max_epochs=2, accumulate_grad_batches=4)).steps == 106
    sparse = training_schedule(100, 10, 1000, 64, TrainerLimits(max_epochs=150, check_val_every_n_epoch=50,
                                                               limit_val_batches=2, num_sanity_val_steps=0))
    assert (sparse.val_passes, sparse.val_slices) == (3, 3 * 128)
    assert training_schedule(31, 32, 10, 10, TrainerLimits(max_epochs=10)).steps == 0  # drop_last: no batch
    assert training_schedule(6738, 32, 0, 1, TrainerLimits(max_steps=300)).epochs == 2  # no max_epochs: steps rule
    with pytest.raises(ValueError, match="never ends"):
        training_schedule(6738, 32, 0, 1, TrainerLimits(max_epochs=-1))


def test_gpu_hours_divide_by_the_datasheet_peak_at_the_runs_precision():
    assert (GPUS["h100"].half, GPUS["h100"].tf32, GPUS["a100"].half, GPUS["a100"].tf32) == (989, 495, 312, 156)
    assert GPUS["h200"].half == GPUS["h100"].half and (GPUS["l40s"].half, GPUS["a10"].tf32) == (362, 62.5)
    assert gpu_hours(989e12 * 0.3 * 3600, "h100", "16-mixed", 0.3) == pytest.approx(1.0)
    assert gpu_hours(495e12 * 0.5 * 7200, "h100", "32-true", 0.5) == pytest.approx(2.0)  # fp32 convs on TF32
    assert peak_flops("v100", "32-true") == 15.7e12 and peak_flops("v100", "16-mixed") == 125e12  # no TF32
    assert peak_flops("a100", "bf16-mixed") == 312e12
    with pytest.raises(ValueError, match="no bf16"):
        peak_flops("v100", "bf16-mixed")
    with pytest.raises(ValueError, match="choose from"):
        peak_flops("k80", "32-true")
    with pytest.raises(ValueError, match="64-true"):
        peak_flops("h100", "64-true")


def test_reference_counts_without_data():
    pretrain = reference_counts(Run(id="pretrain-mim", kind="pretrain", method="mim", label="MIM"))
    assert (pretrain.train, pretrain.valid) == (90_618, round(74 * 90_618 / 296))
    assert pretrain.notes  # the validation count is derived, and says so

    def finetune(subset: str, **changes) -> Run:
        return Run(id="mim", kind="finetune", method="mim", label="MIM", subset=subset, seed=0, **changes)

    assert (reference_counts(finetune("all")).train, reference_counts(finetune("all")).notes) == (6738, ())
    assert reference_counts(finetune("10")).train == 231
    assert reference_counts(finetune("all", train_phases=("ED",))).train == 3369
    assert reference_counts(finetune("all", train_phases=("ED",))).valid == 832
    assert reference_counts(finetune("all", vendors="C_D")).train == round(92 * 6738 / 296)
    with pytest.raises(ValueError, match=r"^mim: the reference data set's subject counts are known for the vendor "
                       r"groups A_B and C_D only, not A,B,C"):
        reference_counts(finetune("all", vendors="A,B,C"))  # a group the reference gives no counts for
    assert parse_slice_overrides(["pretrain=100", "*-n10-*=231"]) == [("pretrain", 100), ("*-n10-*", 231)]
    with pytest.raises(ValueError, match="KEY=N"):
        parse_slice_overrides(["pretrain"])


def test_precision_is_read_from_the_arguments_then_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"precision": "16-mixed"}}))
    assert given_precision(["--config", str(config)]) == "16-mixed"
    assert given_precision(["--config", str(config), "--trainer.precision", "bf16-mixed"]) == "bf16-mixed"
    assert given_precision(["--model.init_args.lr", "0.1"]) == "32-true"


def test_estimate_of_the_smoke_study_prints_every_run_and_a_total(prepared_tiny, tmp_path, capsys):
    prepared, split = prepared_tiny
    study = yaml.safe_load((ROOT / "configs" / "study" / "smoke.yaml").read_text())
    study.update(output_dir=str(tmp_path / "out"), data={"data_dir": str(prepared), "split": str(split)})
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["study", "--config", str(path), "--estimate", "--gpu", "h100", "a100", "--gpus", "1", "4",
                 "--slices-per-epoch", "pretrain-simclr=640"]) == 0
    out = capsys.readouterr().out
    assert main(["study", "--config", str(path), "--list"]) == 0
    ids = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]]
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.split()[1:2] and
            line.split()[1] in ids}
    assert sorted(rows) == sorted(ids) and len(ids) == 19
    assert rows["pretrain-simclr"][4:6] == ["640", "given"]  # 640 // 32 = 20 steps per epoch, 10 epochs
    assert rows["pretrain-simclr"][6:9] == ["20", "10", "200"]
    assert rows["scratch-n1-s0"][5] == "data"
    assert "Total: 19 runs" in out and "wall-clock h, 4 GPUs" in out and "A100 SXM4" in out
    assert "--slices-per-epoch pretrain-simclr=640" in out
    assert not (tmp_path / "out").exists()  # nothing written
    # The counts from the data are those the runner records when it prepares a run (subset, vendors, phases).
    runner = StudyRunner(load_study(path))
    for run_id in ("scratch-n1-s1", "mim-vendors-ab-n2-s0", "scratch-ed-only-n2-s0"):
        runner.run_dir(find_run(runner.runs, run_id)).mkdir(parents=True)
        assert int(rows[run_id][4]) == runner._labelled_split(find_run(runner.runs, run_id))["labelled_slices"]
