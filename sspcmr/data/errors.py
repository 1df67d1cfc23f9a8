"""The one error type of the data layer: a problem with a subject's input, named precisely."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. The message is one line: ``<dataset> <subject>: <file>: <problem>``.

    Args:
        problem: what is wrong, in words a user can act on.
        subject: ``"<dataset> <ID>"`` (or ``None`` when the problem is not a subject's).
        file: the file at fault (or ``None``).
    """

    def __init__(self, problem: str, subject: str | None = None, file: str | Path | None = None) -> None:
        self.problem = problem
        self.subject = subject
        self.file = None if file is None else str(file)
        super().__init__(": ".join(part for part in (subject, self.file, problem) if part))
