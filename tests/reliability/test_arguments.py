"""Bad arguments are refused when the objects are built, with one line naming the argument, its value and what
is allowed: the data module, the U-Net, every pretraining method and study files; the output size the U-Net
cannot divide is refused in ``setup``, before the first batch; through ``sspcmr fit`` no folder is created."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sspcmr.data.datamodule import CineDataModule
from sspcmr.methods import DINO, MIM, PCL, Inpainting, Multitask, Orientation, SimCLR, SliceLocation
from sspcmr.models import UNetConfig
from sspcmr.study.config import StudyConfigError, load_study

REPO = Path(__file__).resolve().parents[2]
TINY = [8, 16]  # 2 stages: divisor 2, cheap to build
NAN, INF = float("nan"), float("inf")


def assert_refused(error: pytest.ExceptionInfo, name: str, value: object) -> None:
    """One line: ``<name> must be <what is allowed>; got <value>``."""
    message = str(error.value)
    assert "\n" not in message, message
    assert message.startswith(f"{name} must be "), message
    assert message.endswith(f"; got {value!r}"), message


# --- data module --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("batch_size", -4), ("batch_size", 0), ("batch_size", 2.5), ("batch_size", True),
    ("output_spacing", 0), ("output_spacing", -1), ("output_spacing", NAN), ("output_spacing", INF),
    ("output_size", 0), ("output_size", 63.5),
    ("num_workers", -1), ("val_batch_size", 0), ("subset_subjects", 0),
    ("subset_seed", -1), ("pretrain_subjects_seed", -1), ("seed", -1), ("seed", 2**32),
    ("pretrain_subjects", True), ("vendors", []),
], ids=str)
def test_the_data_module_refuses_bad_arguments(name: str, value: object) -> None:
    # Neither folder exists: the arguments are checked before anything is read.
    with pytest.raises(ValueError) as error:
        CineDataModule("no-such-folder", "no-such-split.yaml", **{name: value})
    assert_refused(error, name, value)


# --- U-Net ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [[], [0, 8], (8, -16)], ids=repr)
def test_the_unet_config_names_the_channels_as_given(channels) -> None:
    with pytest.raises(ValueError) as error:
        UNetConfig(channels=channels)
    assert_refused(error, "channels", channels)


@pytest.mark.parametrize(("size", "channels", "message"), [
    (100, (32, 64, 128, 256, 512, 512, 512), "output_size 100 is not divisible by 64, which the U-Net with 7 stages "
                                             "needs (use a multiple of 64, e.g. 128)"),
    (60, (8, 16, 32, 64), "output_size 60 is not divisible by 8, which the U-Net with 4 stages needs (use a multiple "
                          "of 8, e.g. 64)"),
    (20, (8, 16, 32, 64, 128, 256), "output_size 20 is not divisible by 32, which the U-Net with 6 stages needs (use "
                                    "a multiple of 32, e.g. 32)"),
])
def test_check_input_size(size: int, channels: tuple, message: str) -> None:
    from sspcmr.models.unet import check_input_size

    config = UNetConfig(channels=channels)
    check_input_size(size - size % config.divisor or config.divisor, config)  # a multiple passes
    with pytest.raises(ValueError) as error:
        check_input_size(size, config)
    assert str(error.value) == message


# --- methods --------------------------------------------------------------------------------------------------------

METHOD_CASES = [
    (SimCLR, "lr", 0), (SimCLR, "lr", NAN), (SimCLR, "momentum", 1.0), (SimCLR, "weight_decay", -1e-4),
    (SimCLR, "temperature", NAN), (SimCLR, "hidden_dim", 0), (SimCLR, "projection_dim", -1),
    (SimCLR, "probe_max_samples", 0), (SimCLR, "monitor_every_n_steps", -1), (SimCLR, "channels", []),
    (PCL, "threshold", NAN), (PCL, "projection_dim", 0),
    (DINO, "student_temperature", 0), (DINO, "teacher_temperature", -0.04), (DINO, "warmup_teacher_temperature", 0),
    (DINO, "center_momentum", 1.5), (DINO, "teacher_momentum", -0.1), (DINO, "output_dim", 0),
    (DINO, "warmup_epochs", -1), (DINO, "freeze_last_layer_epochs", -1), (DINO, "min_lr", -1e-6),
    (DINO, "weight_decay_end", -1.0),
    (MIM, "mask_ratio", 0), (MIM, "mask_ratio", 1.5), (MIM, "mask_value", NAN), (MIM, "mask_seed", 1.5),
    (MIM, "channels", [0, 8]),
    (Inpainting, "coverage", 0), (Inpainting, "bank_size", 0), (Inpainting, "mask_seed", -1),
    (Inpainting, "placement", "grid"),
    (SliceLocation, "step_size", 0), (SliceLocation, "gamma", 0), (SliceLocation, "gamma", 2.0),
    (Orientation, "sigma", NAN), (Orientation, "step_size", -1),
    (Multitask, "orientation_weight", -1), (Multitask, "location_weight", NAN),
]


@pytest.mark.parametrize(("method", "name", "value"), METHOD_CASES,
                         ids=[f"{m.__name__}-{n}-{v}" for m, n, v in METHOD_CASES])
def test_methods_refuse_bad_arguments(method: type, name: str, value: object) -> None:
    arguments = {"channels": TINY, name: value}
    with pytest.raises(ValueError) as error:
        method(**arguments)
    assert_refused(error, name, value)


def test_multitask_refuses_two_zero_weights_with_the_values() -> None:
    with pytest.raises(ValueError, match=r"^orientation_weight and location_weight .*not both 0; got 0 and 0.0$"):
        Multitask(channels=TINY, orientation_weight=0, location_weight=0.0)


@pytest.mark.parametrize(("method", "arguments", "good", "bad", "message"), [
    (MIM, {}, 64, 60, r"^output_size 60 is not divisible by 8, which the U-Net with 4 stages needs"),
    (SimCLR, {}, 64, 36, r"^output_size 36 is not divisible by 8"),
    (MIM, {"patch_size": 32}, 64, 48, r"^output_size 48 is not a multiple of MIM's patch_size 32"),
    (DINO, {"hidden_dim": 8, "bottleneck_dim": 8, "output_dim": 8}, 64, 72,
     r"^output_size 72 is not divisible by 16, which DINO needs: its local crops of 36 px"),
    (Inpainting, {"patch_size": 32}, 64, 48, r"^patch_size 32 does not fit output_size 48"),
])
def test_setup_refuses_an_output_size_the_network_cannot_take(method, arguments, good, bad, message) -> None:
    method(channels=[8, 16, 32, 64], output_size=good, **arguments).setup("fit")
    with pytest.raises(ValueError, match=message):
        method(channels=[8, 16, 32, 64], output_size=bad, **arguments).setup("fit")


@pytest.mark.parametrize(("name", "value"), [
    ("output_size", 0), ("output_spacing", -1.0), ("scale_convention", "times"), ("centring", "middle"),
    ("augmentation_seed", -1), ("num_views", 0),
], ids=str)
def test_a_method_refuses_bad_augmentation_arguments(name: str, value: object) -> None:
    with pytest.raises(ValueError) as error:
        SimCLR(channels=[8, 16, 32, 64], **{name: value})
    assert_refused(error, name, value)


# --- study files ----------------------------------------------------------------------------------------------------

def _study(tmp_path: Path, **changes) -> Path:
    content = {"name": "s", "output_dir": str(tmp_path / "out"), "data": {"data_dir": "d", "split": "s.yaml"},
               "scratch": {"config": "b.yaml"}, **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.mark.parametrize(("text", "value"),
                         [("abc", "abc"), ("1.9", 1.9), ("true", True), ("-1", -1), ("4294967296", 2**32)])
def test_the_study_pretrain_seed_must_be_an_integer(tmp_path: Path, text: str, value: object) -> None:
    path = _study(tmp_path)
    assert load_study(path).pretrain_seed == 0
    path.write_text(path.read_text() + "pretrain_seed: 7\n")
    assert load_study(path).pretrain_seed == 7
    path.write_text(path.read_text().replace("pretrain_seed: 7", f"pretrain_seed: {text}"))
    with pytest.raises(StudyConfigError) as error:
        load_study(path)
    assert str(error.value) == f"{path}: pretrain_seed must be an integer in [0, 4294967295]; got {value!r}"


@pytest.mark.parametrize("seeds", [[-1], [0, 2**32]], ids=repr)
def test_study_seeds_are_seeds_numpy_takes(tmp_path: Path, seeds: list) -> None:
    assert load_study(_study(tmp_path, seeds=[0, 2**32 - 1])).variants[0].seeds == (0, 2**32 - 1)
    with pytest.raises(StudyConfigError) as error:
        load_study(_study(tmp_path, seeds=seeds))
    assert str(error.value) == (f"{tmp_path / 'study.yaml'}: seeds: seeds must be a non-empty list of integers in "
                                f"[0, 4294967295]; got {seeds!r}")


# --- through the real command line ----------------------------------------------------------------------------------

def test_the_cli_refuses_a_bad_batch_size_before_creating_any_folder(tmp_path: Path, monkeypatch, capsys,
                                                                      caplog) -> None:
    import sspcmr.commands.main

    monkeypatch.chdir(tmp_path)  # the config's relative data paths and default folders point in here
    runs = tmp_path / "runs"
    args = ["fit", "--config", str(REPO / "configs/demo/scratch.yaml"), "--data.batch_size", "-4",
            "--trainer.default_root_dir", str(runs), "--trainer.logger.init_args.save_dir", str(runs)]
    try:  # the CLI raises, or reports the error itself and exits or returns non-zero
        outcome = sspcmr.commands.main.main(args)
    except (SystemExit, ValueError) as error:
        outcome = error.code if isinstance(error, SystemExit) else error
    assert outcome not in (0, None)
    text = f"{outcome}\n{capsys.readouterr().err}\n{caplog.text}"
    assert "batch_size must be an integer >= 1; got -4" in text
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == []  # no runs/, no data/, no logs
