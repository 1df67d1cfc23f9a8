"""Every ```python block of README.md and docs/**/*.md runs, so the documented API cannot drift from the code.

A page's blocks run top to bottom in one namespace, as a reader would paste them, in a fresh temporary working
directory: a block that needs data makes it itself (the pages are written that way). Two kinds of block do not
run here:

* ``<!-- file: PATH -->`` on the line before the fence: the block is a file, not a snippet
  (tests/test_adding_a_method.py writes docs/adding-a-method.md's files out and runs them);
* ``<!-- snippet: skip (REASON) -->`` on the line before the fence: it needs what a test cannot have (a GPU,
  a real download, hours of training). Each such block is reported as a skipped test with its reason.

Tracebacks point at the page's own lines (the code is compiled under the page's path at its line numbers).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<lang>[\w+-]*)[ \t]*$")
SKIP = re.compile(r"^\s*<!-- snippet: skip \((?P<reason>.+)\) -->\s*$")
MARKER = re.compile(r"^\s*<!-- snippet:")
FILE = re.compile(r"^\s*<!-- file: \S+ -->\s*$")
PYTHON = {"python", "py"}
# Pages whose snippets take over ~10 s on two CPU cores: the phantom at its realistic size (10-20 s a subject).
SLOW_PAGES = {"docs/synthetic-data.md"}


@dataclass(frozen=True)
class Snippet:
    """One ```python block of a page.

    Args:
        page: the page, relative to the repository root.
        line: 1-based line number of the opening fence.
        code: the block's code, dedented (blocks inside list items are indented).
        skip: why the block does not run here, or None when it runs.
    """

    page: str
    line: int
    code: str
    skip: str | None = None

    def compiled(self):
        """The code object, with the page's path and line numbers in its tracebacks."""
        return compile("\n" * self.line + self.code, str(ROOT / self.page), "exec")


def closing_fence(lines: list[str], start: int, ticks: str, where: str) -> int:
    """Index of the line closing the fence opened at ``start`` (the same backticks, any indent)."""
    for index in range(start + 1, len(lines)):
        if lines[index].strip() == ticks:
            return index
    raise ValueError(f"{where}:{start + 1}: code fence never closed")


def parse_page(text: str, page: str) -> list[Snippet]:
    """The python blocks of one page in order, files excluded, skip markers read.

    Raises:
        ValueError: a fence is never closed, or a ``<!-- snippet: ... -->`` marker is malformed or does not sit
            on the line right before a python fence (a misplaced marker would silently run or skip a block).
    """
    lines, snippets, index = text.splitlines(), [], 0
    marked = {n for n, line in enumerate(lines) if MARKER.match(line)}
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = closing_fence(lines, index, fence["ticks"], page)
        before = lines[index - 1] if index else ""
        if fence["lang"] in PYTHON and not FILE.match(before):
            skip = SKIP.match(before)
            if index - 1 in marked and skip is None:
                raise ValueError(f"{page}:{index}: malformed marker, write <!-- snippet: skip (REASON) -->")
            marked.discard(index - 1)
            code = textwrap.dedent("\n".join(lines[index + 1:end]))
            snippets.append(Snippet(page, index + 1, code, skip["reason"] if skip else None))
        index = end + 1
    if marked:
        raise ValueError(f"{page}:{min(marked) + 1}: a snippet marker must sit right before a ```python fence")
    return snippets


def documentation_pages() -> list[str]:
    """README.md and every page under docs/, relative to the repository root."""
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]


SNIPPETS = {page: parse_page((ROOT / page).read_text(), page) for page in documentation_pages()}
RUNNABLE = [pytest.param(page, marks=[pytest.mark.slow] if page in SLOW_PAGES else [], id=page)
            for page, snippets in SNIPPETS.items() if any(s.skip is None for s in snippets)]
SKIPPED = [pytest.param(s, id=f"{s.page}:{s.line}") for snippets in SNIPPETS.values() for s in snippets if s.skip]


@pytest.fixture
def one_thread():
    """Snippets run with one intra-op thread, as the rest of the suite does on shared CPUs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_snippets_run(page, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    namespace = {"__name__": "snippet"}
    for snippet in SNIPPETS[page]:
        if snippet.skip is None:
            exec(snippet.compiled(), namespace)


@pytest.mark.parametrize("snippet", SKIPPED)
def test_skipped_snippet(snippet):
    pytest.skip(f"{snippet.page}:{snippet.line}: {snippet.skip}")


def test_the_pages_have_snippets_and_the_skips_stay_rare():
    runnable = [s for snippets in SNIPPETS.values() for s in snippets if s.skip is None]
    skipped = [s for snippets in SNIPPETS.values() for s in snippets if s.skip]
    assert len(runnable) >= 6 and len(skipped) <= len(runnable) // 2, (len(runnable), len(skipped))
    assert SLOW_PAGES <= {param.values[0] for param in RUNNABLE}


PAGE = """\
Text.

```python
x = 1
```

<!-- file: pkg/module.py -->
```python
raise SystemExit("a file, not a snippet")
```

<!-- snippet: skip (needs a GPU (CUDA)) -->
```python
import cuda_only
```

1. A list item:

   ```python
   y = x + 1
   ```

```bash
echo not python
```
"""


def test_the_parser_reads_blocks_files_and_skip_markers():
    snippets = parse_page(PAGE, "page.md")
    assert [(s.line, s.code, s.skip) for s in snippets] == [
        (3, "x = 1", None), (13, "import cuda_only", "needs a GPU (CUDA)"), (19, "y = x + 1", None)]
    namespace = {}
    for snippet in snippets[::2]:
        exec(snippet.compiled(), namespace)
    assert namespace["y"] == 2


@pytest.mark.parametrize("bad", [
    "<!-- snippet: skip -->\n```python\nx = 1\n```\n",  # no reason
    "<!-- snippet: skip (why) -->\n\n```python\nx = 1\n```\n",  # not right before the fence
    "<!-- snippet: skip (why) -->\n```bash\necho\n```\n",  # not a python block
    "```python\nx = 1\n",  # never closed
])
def test_the_parser_refuses_misplaced_markers_and_open_fences(bad):
    with pytest.raises(ValueError):
        parse_page(bad, "page.md")


def test_a_failing_snippet_points_at_its_page_line():
    snippet = parse_page(PAGE.replace("y = x + 1", "y = undefined_name"), "docs/page.md")[2]
    with pytest.raises(NameError) as failure:
        exec(snippet.compiled(), {})
    assert failure.traceback[-1].lineno + 1 == 20 and str(failure.traceback[-1].path).endswith("docs/page.md")
