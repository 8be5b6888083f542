"""Replaying many partitions at once, in worker processes, with the output of a serial run.

A replay is a pure function of a partition's files (docs/architecture.md section
2.3), so partitions can be replayed in any process in any order; the results
come back in the order of the inputs, so whatever is written from them is
byte-identical to a serial run. Workers are started with ``spawn`` (a fresh
interpreter: no state copied from the parent, and safe with threads), so
the job must be picklable: a module-level function or an instance of a
module-level class.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tickrec.errors import UsageError

__all__ = ["map_partitions"]

T = TypeVar("T")
R = TypeVar("R")


def map_partitions(job: Callable[[T], R], items: Sequence[T], workers: int = 1) -> Iterator[R]:
    """``job(item)`` for each item, in order, using up to *workers* processes.

    With one worker (or one item) everything runs in this process, one item
    at a time.
    """
    if workers < 1:
        raise UsageError("workers must be >= 1")
    if workers == 1 or len(items) <= 1:
        yield from map(job, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context) as pool:
        yield from pool.map(job, items)
