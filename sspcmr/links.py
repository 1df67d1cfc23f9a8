"""Where sspcmr's documentation lives online. Help texts point here, not at ``docs/``: a pip user has no
clone of the repository (the site is built from ``docs/`` with MkDocs, so every page has an address)."""

from __future__ import annotations

DOCS_URL = "https://sspcmr.readthedocs.io/en/latest/"


def docs_page(page: str) -> str:
    """The site address of a page of ``docs/``, e.g. ``docs_page("cli.md#shipped-configs")``.

    Args:
        page: the page's path below ``docs/`` (``evaluation.md``, ``methods/README.md``), optionally with a
            ``#anchor``.

    Returns:
        The address under :data:`DOCS_URL`, as MkDocs serves it: ``X.md`` at ``X/``, a folder's ``README.md``
        or ``index.md`` at the folder itself.
    """
    path, hash_sign, anchor = page.partition("#")
    path = path.removesuffix(".md")
    for index in ("README", "index"):
        if path == index or path.endswith("/" + index):
            path = path.removesuffix(index)
            break
    else:
        path += "/"
    return DOCS_URL + path.lstrip("/") + hash_sign + anchor
