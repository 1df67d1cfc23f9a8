"""Code, docs and configs cite docs/reference.md by anchor (not by section numbers of a document the repository
does not have): every cited anchor exists, once, and every Markdown link reaches that page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference.md"
ANCHOR = re.compile(r'^<a id="([\w-]+)"></a>$', re.MULTILINE)
CITATION = re.compile(r"reference\.md#([\w-]+)((?:,\s*#[\w-]+)*)")
FOLDERS = ("sspcmr", "tests", "docs", "configs", "examples", "benchmarks")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh"}


def citing_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder in FOLDERS:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in SUFFIXES and p != PAGE]
    return sorted(files)


def test_anchors_are_unique_and_the_page_links_resolve():
    anchors = ANCHOR.findall(PAGE.read_text())
    assert len(anchors) >= 40 and len(anchors) == len(set(anchors))
    missing = set(re.findall(r"\]\(#([\w-]+)\)", PAGE.read_text())) - set(anchors)
    assert not missing, missing


def test_every_citation_names_an_existing_anchor():
    known = set(ANCHOR.findall(PAGE.read_text()))
    problems, cited = [], 0
    for path in citing_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if path.suffix == ".md":
                problems += [f"{path}:{n}: {link}" for link in re.findall(r"\]\(([^)#\s]*reference\.md)#", line)
                             if (path.parent / link).resolve() != PAGE]
            for match in CITATION.finditer(line):
                for target in [match.group(1), *re.findall(r"#([\w-]+)", match.group(2))]:
                    cited += 1
                    if target not in known:
                        problems.append(f"{path.relative_to(ROOT)}:{n}: #{target}")
    assert cited >= 100 and not problems, problems


def test_no_numbered_section_of_an_absent_protocol_is_cited():
    # "(reference 0.1)" is a value (the reference's default), so only explicit section citations are looked for.
    pattern = re.compile(r"protocol'?s? (?:section|§) ?\d|\breference(?:'s)? (?:section|§) ?\d|\bprotocol \d+\.\d+")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in citing_files() if p.name != "test_reference_citations.py"
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
