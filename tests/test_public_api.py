"""``import sspcmr``: the public names resolve to the classes and functions they name, and importing the package
(and ``sspcmr --version``) stays free of torch until a name is used (PEP 562 lazy attributes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sspcmr

PUBLIC = {
    "CineDataModule": "sspcmr.data.datamodule",
    "UNet": "sspcmr.models.unet",
    "UNetConfig": "sspcmr.models.unet",
    "Segmentation": "sspcmr.methods.segmentation",
    "SimCLR": "sspcmr.methods.simclr",
    "PCL": "sspcmr.methods.pcl",
    "DINO": "sspcmr.methods.dino",
    "MIM": "sspcmr.methods.mim",
    "Inpainting": "sspcmr.methods.inpainting",
    "SliceLocation": "sspcmr.methods.slice_location",
    "Orientation": "sspcmr.methods.orientation",
    "Multitask": "sspcmr.methods.multitask",
    "load_backbone": "sspcmr.pretrained",
    "checkpoint_grid": "sspcmr.pretrained",
    "read_manifest": "sspcmr.pretrained",
    "TransferReport": "sspcmr.methods.transfer",
}


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_sspcmr_does_not_import_torch():
    loaded = json.loads(_run("import json, sys, sspcmr; print(json.dumps(sorted(sys.modules)))"))
    assert not {"torch", "lightning", "numpy", "sspcmr.methods", "sspcmr.models"} & set(loaded)
    # Using a name imports what it needs.
    assert _run("import sys, sspcmr; sspcmr.UNet; print('torch' in sys.modules)").strip() == "True"


def test_version_option_does_not_import_torch():
    code = ("import sys\nfrom sspcmr.commands.main import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    assert _run(code).splitlines()[-1] == "False"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_resolves_to_its_definition(name):
    import importlib

    value = getattr(sspcmr, name)
    assert value is getattr(importlib.import_module(PUBLIC[name]), name)
    assert value.__module__ == PUBLIC[name]
    assert name in sspcmr.__all__ and name in dir(sspcmr)


def test_all_lists_exactly_the_public_names():
    assert set(sspcmr.__all__) == {"__version__", *PUBLIC}
    assert isinstance(sspcmr.__version__, str)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        sspcmr.Missing  # noqa: B018
    assert not hasattr(sspcmr, "load_transfer")  # internals stay in their modules
