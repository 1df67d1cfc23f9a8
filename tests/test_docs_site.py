"""The documentation site's strict mode means something: with mkdocs.yml's own ``validation`` settings, a link
to a missing page, a missing #anchor, a link out of docs/ (``../sspcmr/...``), an absolute link and a page left out
of the nav each fail the build, and a clean site builds.

The real site is built by ``make docs`` (CI runs it after the tests); these tests build a two-page site in a
temporary folder in well under a second. They need the ``docs`` extra and are skipped without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLEAN = "# Home\n\nSee [the other page](other.md#a-section) and [below](#home).\n"


def validation_block() -> str:
    """The ``validation:`` section of mkdocs.yml, verbatim (up to the next top-level key)."""
    match = re.search(r"^validation:\n(?:[ #].*\n|\n)+", (ROOT / "mkdocs.yml").read_text(), flags=re.MULTILINE)
    assert match, "mkdocs.yml has no validation section"
    return match.group(0)


def build_site(folder: Path, home: str, extra_page: bool = False) -> None:
    """Build a site of ``index.md`` (``home``) and ``other.md`` in strict mode with mkdocs.yml's validation."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    docs = folder / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(home)
    (docs / "other.md").write_text("# Other\n\n## A section\n\nText.\n")
    if extra_page:
        (docs / "extra.md").write_text("# Not in the nav\n")
    config = folder / "mkdocs.yml"
    config.write_text("site_name: check\ndocs_dir: docs\nsite_dir: site\n" + validation_block()
                      + "nav:\n  - index.md\n  - other.md\n")
    build(load_config(str(config), strict=True))


def test_a_clean_site_builds(tmp_path):
    pytest.importorskip("mkdocs")
    build_site(tmp_path, CLEAN)
    assert (tmp_path / "site" / "other" / "index.html").exists()


@pytest.mark.parametrize("link", [
    "[gone](missing.md)",
    "[no anchor](other.md#no-such-section)",
    "[no anchor here](#no-such-heading)",
    "[outside the site](../sspcmr/methods/mim.py)",
    "[absolute](/docs/other.md)",
])
def test_a_broken_link_fails_the_strict_build(tmp_path, link):
    pytest.importorskip("mkdocs")
    from mkdocs.exceptions import Abort

    with pytest.raises(Abort, match="strict mode"):
        build_site(tmp_path, CLEAN + f"\n{link}\n")


def test_a_page_left_out_of_the_nav_fails_the_strict_build(tmp_path):
    pytest.importorskip("mkdocs")
    from mkdocs.exceptions import Abort

    with pytest.raises(Abort, match="strict mode"):
        build_site(tmp_path, CLEAN, extra_page=True)


def test_read_the_docs_builds_the_same_strict_site_from_the_docs_extra():
    import yaml

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text())
    assert config["version"] == 2
    assert config["mkdocs"] == {"configuration": "mkdocs.yml", "fail_on_warning": True}
    assert config["python"]["install"] == [{"requirements": "docs/requirements.txt"}]
    requirements = [line.strip() for line in (ROOT / "docs" / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    assert requirements == extra  # one list of docs requirements, in two places
    # ... and that file is not copied into the site
    assert re.search(r"^exclude_docs: \|\n  requirements\.txt$", (ROOT / "mkdocs.yml").read_text(), flags=re.MULTILINE)
