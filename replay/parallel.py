"""Replaying many partitions at once, in worker processes or on a Dask cluster, with the
output of a serial run.

A replay is a pure function of a partition's files (docs/architecture.md section
2.3), so partitions can be replayed in any process, on any machine, in any
order; the results come back in the order of the inputs, so whatever is
written from them is byte-identical to a serial run.

- ``workers`` > 1: local worker processes started with ``spawn`` (a fresh
  interpreter: no state copied from the parent, and safe with threads), so
  the job must be picklable: a module-level function, an instance of a
  module-level class, or a bound method of one.
- ``cluster``: ``local:N`` starts a Dask ``LocalCluster`` of N single-threaded
  worker processes on 127.0.0.1 for the call; ``tcp://host:8786`` (or any
  scheduler address) uses a running Dask cluster. Its workers must reach
  the dataset (a shared object store, see :mod:`tickrec.store`) and have
  tickrec installed.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any, TypeVar

from tickrec.errors import UsageError

__all__ = ["map_partitions", "parse_cluster"]

T = TypeVar("T")
R = TypeVar("R")


def parse_cluster(text: str) -> tuple[str, int | str]:
    """``("local", N)`` for ``local:N``, ``("scheduler", address)`` for an address."""
    if text.startswith("local:"):
        n = text.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"--cluster {text!r}: local:N needs a worker count N >= 1")
        return "local", int(n)
    if "://" not in text:
        raise UsageError(f"--cluster {text!r}: give local:N or a scheduler address tcp://host:port")
    return "scheduler", text


def _client(stack: ExitStack, cluster: str | Any) -> Any:
    """A Dask client for *cluster*: a ``local:N`` or address text, or a client already."""
    if not isinstance(cluster, str):
        return cluster
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "--cluster needs Dask: pip install 'tickrec[cluster]' (dask.distributed)"
        ) from None
    kind, value = parse_cluster(cluster)
    if kind == "scheduler":
        return stack.enter_context(Client(value))
    local = stack.enter_context(
        LocalCluster(
            n_workers=int(value),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    )
    return stack.enter_context(Client(local))


def map_partitions(
    job: Callable[[T], R],
    items: Sequence[T],
    workers: int = 1,
    cluster: str | Any | None = None,
) -> Iterator[R]:
    """``job(item)`` for each item, in order, using up to *workers* processes, or the
    Dask *cluster* (``local:N``, a scheduler address, or a ``dask.distributed.Client``).

    With one worker (or one item) and no cluster, everything runs in this
    process, one item at a time.
    """
    if workers < 1:
        raise UsageError("workers must be >= 1")
    if cluster is not None:
        with ExitStack() as stack:
            client = _client(stack, cluster)
            futures = client.map(job, items, pure=False)
            try:
                for future in futures:
                    yield future.result()
            finally:
                client.cancel(futures)
        return
    if workers == 1 or len(items) <= 1:
        yield from map(job, items)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context) as pool:
        yield from pool.map(job, items)
