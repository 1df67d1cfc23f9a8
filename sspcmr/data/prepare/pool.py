"""The process pool of ``sspcmr prepare``: subjects in worker processes, in order, inline for one worker."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool"]


class worker_pool:
    """``with worker_pool(n, jobs) as run: run(fn, items)`` -> results in order (inline when n = 1)."""

    def __init__(self, workers: int, jobs: int) -> None:
        self.workers = max(1, min(int(workers), jobs))
        self.executor = None

    def __enter__(self):
        if self.workers == 1:
            return lambda fn, items: map(fn, items)
        self.executor = ProcessPoolExecutor(self.workers)
        return lambda fn, items: self.executor.map(fn, items, chunksize=1)

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)
