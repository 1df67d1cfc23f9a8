"""README.md's relative links reach files of the repository (and their #anchors reach headings there).

The pages under docs/ are checked by the documentation site's strict build (mkdocs.yml: a missing page or
anchor fails ``make docs``); README.md is not one of its pages, so its links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def heading_ids(page: Path) -> set[str]:
    """GitHub's ids of a Markdown page's headings (punctuation dropped, one hyphen per space) and its
    explicit ``<a id="...">`` anchors."""
    text = page.read_text()
    headings = {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in text.splitlines() if re.match(r"#{1,6} ", line)}
    return headings | set(re.findall(r'<a id="([\w-]+)">', text))


def test_readme_links_reach_files_and_anchors():
    links = [link for link in LINK.findall((ROOT / "README.md").read_text()) if "://" not in link]
    assert len(links) >= 10
    problems = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        if not target.exists():
            problems.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in heading_ids(target):
            problems.append(f"{link}: no such anchor")
    assert not problems, problems


def test_heading_ids_follow_github():
    page = ROOT / "docs" / "evaluation.md"
    assert "predictions-sspcmrinference-sspcmrevaluationwriter" in heading_ids(page)
