"""A hard time budget over prioritised measurements: each runs only if its estimated duration fits in the time
left; what does not fit (or fails) is recorded with the reason, and the rest go on."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Task:
    """One measurement.

    Attributes:
        kind: what it measures (``steps``, ``loading``, ``augmentation``), where its result goes.
        label: a readable name (method and variant).
        run: does the measurement and returns its row.
        estimate: seconds it is expected to take, asked just before it would start.
        method: the method measured (empty for none).
    """

    kind: str
    label: str
    run: Callable[[], dict[str, Any]]
    estimate: Callable[[], float]
    method: str = ""


@dataclass
class Budget:
    """Runs tasks while their estimates fit before the deadline.

    Attributes:
        seconds: the budget, from construction.
        skipped: ``{kind, label, reason}`` of every task left out.
        errors: ``{kind, label, error, traceback}`` of every task that raised.
        durations: seconds each completed task took, by label.
    """

    seconds: float
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        """Seconds left."""
        return self.seconds - (time.monotonic() - self.start)

    def skip(self, task: Task, reason: str) -> None:
        """Record ``task`` as left out for ``reason``."""
        self.skipped.append({"kind": task.kind, "label": task.label, "reason": reason})
        print(f"skipped {task.kind} {task.label}: {reason}", flush=True)

    def attempt(self, task: Task) -> dict[str, Any] | None:
        """Run ``task`` if it fits; its row, or None when skipped or failed (recorded either way)."""
        left, estimate = self.left(), task.estimate()
        if left <= 0 or estimate > left:
            self.skip(task, f"out of time: {max(left, 0.0):.0f} s left, about {estimate:.0f} s needed")
            return None
        start = time.monotonic()
        try:
            row = task.run()
        except Exception as error:  # one failure (e.g. out of memory) must not lose the other measurements
            self.errors.append({"kind": task.kind, "label": task.label, "error": f"{type(error).__name__}: {error}",
                                "traceback": traceback.format_exc(limit=8)})
            print(f"failed {task.kind} {task.label}: {type(error).__name__}: {error}", flush=True)
            return None
        finally:
            self.durations[task.label] = time.monotonic() - start
        row["seconds"] = self.durations[task.label]
        return row
