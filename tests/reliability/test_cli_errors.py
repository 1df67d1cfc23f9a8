"""Every command fails in one clear line: ``sspcmr <command>: error: ...``, exit 2 for bad input, 1 for a
machine failure or an unexpected error; ``--debug`` / ``SSPCMR_DEBUG=1`` show the traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sspcmr.commands.errors import describe
from sspcmr.commands.main import main
from sspcmr.data.errors import DataError, MachineError
from sspcmr.models import UNet, UNetConfig
from tests.test_cli import fit_args

ROOT = Path(__file__).resolve().parents[2]


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


def _sspcmr(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sspcmr", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, **(env or {})})


def test_training_command_with_a_missing_data_folder_fails_in_one_line(tmp_path):
    result = _sspcmr("fit", "--config", "configs/demo/scratch.yaml", "--data.data_dir", str(tmp_path / "none"),
                     "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert _errors(result.stderr) == [f"sspcmr fit: error: {tmp_path / 'none'} is not a prepared data set (no "
                                      "manifest.json); run `sspcmr prepare` first"]


def test_debug_shows_the_traceback(tmp_path):
    result = _sspcmr("fit", "--config", "configs/demo/scratch.yaml", "--data.data_dir", str(tmp_path / "none"),
                     "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), env={"SSPCMR_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "DataError" in result.stderr
    with pytest.raises(DataError, match="not a prepared data set"):
        main(["inspect", "--prepared", str(tmp_path), "--split", str(tmp_path / "s.yaml"), "--debug"])


def test_wrong_option_value_is_one_line(capsys):
    assert main(["fit", "--data.batch_size", "abc"]) == 2
    assert _errors(capsys.readouterr().err) == [
        "sspcmr fit: error: Parser key \"data.batch_size\": Expected a <class 'int'>. Got value: abc"]


def test_init_from_with_another_architecture_is_one_line(prepared_tiny, tmp_path, capsys):
    wide = tmp_path / "wide.pt"
    torch.save({k: v for k, v in UNet(UNetConfig(channels=(8, 16, 32))).state_dict().items()
                if k.startswith("encoder.")}, wide)
    code = main(fit_args(prepared_tiny, tmp_path, "--trainer.max_epochs", "1",
                         "--model.init_args.init_from", str(wide)))
    errors = _errors(capsys.readouterr().err)
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(f"sspcmr fit: error: init_from: {wide} does not fit this U-Net")
    assert "shapes" in errors[0]


def test_machine_failure_in_a_data_command_is_one_line_exit_1(monkeypatch, tmp_path, capsys):
    import sspcmr.phantom as synthetic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "raw" / "MnM"))

    monkeypatch.setattr(synthetic, "generate_dataset", full)
    assert main(["synth", "--out", str(tmp_path / "raw"), "--quiet"]) == 1
    assert _errors(capsys.readouterr().err) == [f"sspcmr synth: error: No space left on device ({tmp_path}/raw/MnM)"]


def test_unexpected_error_is_one_line_with_the_debug_hint(monkeypatch, tmp_path, capsys):
    import sspcmr.phantom as synthetic

    def broken(*args, **kwargs):
        raise RuntimeError("something\nspanning\nmany\nlines")

    monkeypatch.setattr(synthetic, "generate_dataset", broken)
    assert main(["synth", "--out", str(tmp_path / "raw"), "--quiet"]) == 1
    assert _errors(capsys.readouterr().err) == [
        "sspcmr synth: error: unexpected RuntimeError: something ... (run with --debug for the traceback)"]


@pytest.mark.parametrize("error, code", [
    (DataError("bad value", "mm1 A0", "/raw/x.nii.gz"), 2),
    (ValueError("batch_size must be a positive integer; got -4"), 2),
    (OverflowError("cannot convert float infinity to integer"), 2),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"), 2),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y"), 1),
    (MachineError("writing", "/out/subjects", OSError(errno.EFBIG, "File too large")), 1),
    (MemoryError(), 1),
])
def test_error_kinds_map_to_exit_codes(error, code):
    lines, exit_code = describe(error)
    assert exit_code == code and len(lines) == 1 and "\n" not in lines[0]


def test_nibabel_errors_are_input_errors():
    from nibabel.filebasedimages import ImageFileError

    assert describe(ImageFileError("Cannot work out file type of 'x.txt'"))[1] == 2


def test_a_message_naming_its_command_is_not_prefixed_twice(tmp_path, capsys):
    missing = tmp_path / "missing.ckpt"
    assert main(["export-backbone", str(missing), "-o", str(tmp_path / "out.pt")]) == 2
    assert _errors(capsys.readouterr().err) == [f"sspcmr export-backbone: error: {missing} does not exist"]
