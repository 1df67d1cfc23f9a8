"""docs/adding-a-method.md is true: its worked example, written out of the page into a folder outside the
package, trains through the real ``sspcmr fit`` with its own config, owns its views and targets, and writes a
checkpoint a ``Segmentation`` fine-tunes from, with no other file of sspcmr changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from sspcmr.commands.main import main
from sspcmr.data import keys as K
from sspcmr.methods import Segmentation
from sspcmr.methods.transfer import MANIFEST_KEY

PAGE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"


def page_files() -> dict[str, str]:
    """The page's files: each code block preceded by ``<!-- file: PATH -->``."""
    return dict(re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", PAGE.read_text(), flags=re.DOTALL))


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The example method as a module ``rotation_example`` outside the package, and its config pointing at it."""
    files = page_files()
    assert set(files) == {"sspcmr/methods/rotation.py", "configs/pretrain/rotation.yaml"}
    (tmp_path / "rotation_example.py").write_text(files["sspcmr/methods/rotation.py"])
    config = tmp_path / "rotation.yaml"
    config.write_text(files["configs/pretrain/rotation.yaml"].replace("sspcmr.methods.Rotation",
                                                                      "rotation_example.Rotation"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import rotation_example

    return rotation_example, config


def test_the_example_owns_its_views_and_targets(example, prepared_tiny):
    from sspcmr.data.datamodule import CineDataModule

    module, _ = example
    root, split = prepared_tiny
    data = CineDataModule(str(root), str(split), mode="pretrain", batch_size=4, num_workers=0, output_size=64)
    data.setup("fit")
    native = next(iter(data.train_dataloader()))
    model = module.Rotation(channels=[8, 16, 32, 64], output_size=64)
    assert model.train_augmentation().views[0].geometry.rotation_prob == 0.0  # no free rotation
    unturned = model.train_augmentation()(native, torch.Generator().manual_seed(0))[K.IMAGE]
    batch = model.augment(native, training=True)  # the same stream: seed 0, rank 0
    pairs = zip(batch[K.IMAGE], batch[module.TURNS], strict=True)
    turned_back = torch.stack([torch.rot90(x, -int(k), dims=(-2, -1)) for x, k in pairs])
    assert torch.equal(turned_back, unturned)


def test_the_example_trains_through_the_cli_and_transfers(example, prepared_tiny, tmp_path):
    _, config = example
    root, split = prepared_tiny
    assert main(["fit", "--config", str(config), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                 "--trainer.precision", "32-true", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                 "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
                 "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path),
                 "--model.channels", "[8,16,32,64]", "--data.data_dir", str(root), "--data.split", str(split),
                 "--data.output_size", "64", "--data.batch_size", "4", "--data.num_workers", "0"]) == 0
    (checkpoint,) = tmp_path.rglob("last.ckpt")
    manifest = torch.load(checkpoint, map_location="cpu", weights_only=True)[MANIFEST_KEY]
    assert manifest["method"] == "rotation" and manifest["transferable"] == ["encoder"]
    tuned = Segmentation(channels=[8, 16, 32, 64], output_size=64, init_from=str(checkpoint), transfer="encoder")
    report = tuned.apply_init_from()
    assert report is not None and "encoder" in str(report)
