"""Files sspcmr writes atomically get the mode of any new file (0o666 less the umask), not the 0o600 of a private
temporary file: colleagues sharing a group can read exported backbones, reports and prepared tables."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from sspcmr.data.atomic import atomic_write_bytes, create_beside
from sspcmr.data.store.format import TABLES_FOLDER
from sspcmr.evaluation.charts import Line, line_chart
from sspcmr.methods.export import export_backbone
from sspcmr.methods.segmentation import Segmentation


@pytest.fixture(params=[0o022, 0o027, 0o077], ids=["022", "027", "077"])
def umask(request):
    """The process umask for one test (pytest runs tests in one thread: setting it is safe here)."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_follow_the_umask(tmp_path, umask):
    target = tmp_path / "sub" / "table.csv"
    atomic_write_bytes(target, lambda tmp: tmp.write_text("a,b\n"))
    assert _mode(target) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write_bytes(tmp_path / "out.json", fail)
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_never_reused(tmp_path, monkeypatch):
    first = create_beside(tmp_path / "x.pt")
    assert first.name.startswith(".x.pt.") and first.name.endswith(".part.pt")
    monkeypatch.setattr("secrets.token_hex", lambda n: first.name.split(".")[3])  # every draw clashes
    with pytest.raises(FileExistsError, match="no free temporary name"):
        create_beside(tmp_path / "x.pt")


def test_exported_backbone_and_report_chart_are_group_readable(tmp_path, umask):
    model = Segmentation(channels=[8, 16, 32], log_images=False)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "last.ckpt")
    exported = export_backbone(tmp_path / "last.ckpt", tmp_path / "backbone.pt")
    chart = line_chart([Line("dice", [1, 2], [0.5, 0.6])], tmp_path / "report" / "dice.png", title="t",
                       x_label="x", y_label="y")
    for path in (exported, exported.with_name("backbone.pt.json"), chart):
        assert _mode(path) == 0o666 & ~umask, path


def test_prepared_tables_are_group_readable(prepared_tiny):
    umask = os.umask(0o022)  # read the umask the session fixture wrote under (restored at once)
    os.umask(umask)
    tables = [p for p in (prepared_tiny[0] / TABLES_FOLDER).rglob("*") if p.is_file()]
    assert tables
    for path in tables:
        assert _mode(path) == 0o666 & ~umask, path
