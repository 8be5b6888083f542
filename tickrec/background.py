"""An asyncio server run in a background thread, for tests, notebooks and the demo.

:class:`Background` runs any object with ``async start()`` and ``async stop()``
in an event loop of its own thread: :meth:`~Background.start` returns once
it listens (or raises what its start raised), :meth:`~Background.stop` stops
it and joins the thread. The simulator (:class:`tickrec.sim.Simulator`) and
the replay server (:class:`replay.serve.Server`) are both run this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["Background"]


class _Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Service)


class Background(Generic[S]):
    """The service *make* builds, running in a daemon thread named *name*; a context manager."""

    def __init__(self, make: Callable[[], S], name: str) -> None:
        self._make = make
        self._name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._service: S | None = None

    @property
    def service(self) -> S:
        """The running service."""
        if self._service is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._service

    def start(self) -> Self:
        """Start the thread and wait until the service listens."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} was already started")
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        service = self._make()
        await service.start()
        self._service = service
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await service.stop()

    def stop(self) -> None:
        """Stop the service and join the thread; raise what the thread raised, if anything."""
        if self._thread is None or self._loop is None or self._stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may have ended already
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
