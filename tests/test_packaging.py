"""What the wheel and the sdist carry: the shipped configs and ``py.typed`` as package data, every package, the
license and project metadata, and an sdist complete enough that its own tests run."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import setuptools
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parents[1]
# What the sdist must hold besides the package, so that `pytest` and the docs run from it unpacked.
PROJECT_FOLDERS = ("tests", "configs", "docs", "examples", "benchmarks")
PROJECT_FILES = ("Makefile", "README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "setup.py", "MANIFEST.in")
# Never copied to the build folder: the environment, data, runs and earlier builds of the repository's top level,
# and caches anywhere (tests/data is source).
NOT_SOURCE_TOP = {".venv", ".git", "data", "runs", "site", "build", "dist", "sspcmr.egg-info", "lightning_logs"}
CACHES = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ruff_cache")


def not_source(folder: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ``ignore``: what a source tree holds that is not source."""
    top = NOT_SOURCE_TOP.intersection(names) if Path(folder) == ROOT else set()
    return top | CACHES(folder, names)


def project_files(folder: Path) -> set[str]:
    """The files below ``folder`` (relative, POSIX), without caches."""
    return {p.relative_to(folder.parent).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture
def setup_arguments(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The arguments setup.py gives setuptools (run in the repository, as a build does)."""
    captured: dict = {}
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    runpy.run_path(str(ROOT / "setup.py"))
    return captured


def test_every_package_is_declared(setup_arguments: dict) -> None:
    packages = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in (ROOT / "sspcmr").rglob("__init__.py")}
    assert packages <= set(setup_arguments["packages"])


def test_package_data_holds_every_shipped_config_and_py_typed(setup_arguments: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # setuptools' own selection of package data, without a build; the MANIFEST.in part (include_package_data)
    # would write sspcmr.egg-info into the repository, and the built wheel's test below covers it
    build_py = Distribution({"name": "sspcmr", **setup_arguments, "include_package_data": False}
                            ).get_command_obj("build_py")
    build_py.ensure_finalized()
    built = {Path(build_dir, name).relative_to(build_py.build_lib).as_posix()
             for _, _, build_dir, names in build_py.data_files for name in names}
    shipped = {"sspcmr/" + name for name in project_files(ROOT / "configs") if name.endswith((".yaml", ".yml"))}
    assert shipped and shipped <= built
    assert "sspcmr/py.typed" in built and (ROOT / "sspcmr" / "py.typed").is_file()


def test_license_and_project_metadata() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"  # an SPDX expression: the table form is deprecated by setuptools
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) the sspcmr authors" in text
    assert project["authors"] and set(project["urls"]) >= {"Homepage", "Documentation", "Issues"}
    from sspcmr import __version__
    from sspcmr.links import DOCS_URL

    assert project["urls"]["Documentation"] == DOCS_URL
    assert f"## {__version__}" in (ROOT / "CHANGELOG.md").read_text()  # every version has its entry


@pytest.mark.slow
def test_built_wheel_and_sdist_hold_what_they_promise(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=not_source)  # a build writes into its tree: never into the repository
    out = tmp_path / "dist"
    build = (f"from setuptools import build_meta as b; b.build_sdist({str(out)!r}); "
             f"b.build_wheel({str(out)!r})")
    subprocess.run([sys.executable, "-c", build], cwd=source, check=True, capture_output=True, timeout=300)
    wheel = zipfile.ZipFile(next(out.glob("*.whl"))).namelist()
    shipped = {"sspcmr/" + name for name in project_files(ROOT / "configs") if name.endswith((".yaml", ".yml"))}
    assert shipped <= set(wheel) and "sspcmr/py.typed" in wheel
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in wheel)
    assert not any(name.startswith(("tests/", "configs/", "docs/")) for name in wheel)

    with tarfile.open(next(out.glob("*.tar.gz"))) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for folder in PROJECT_FOLDERS:
        assert project_files(ROOT / folder) <= names, folder  # conftest.py and every test subfolder included
    assert set(PROJECT_FILES) <= names
