"""Ground truth: what the simulator really did, as JSON lines, for tests and audits.

When a truth directory is given the simulator writes, one JSON object per line:

``messages.jsonl``
    every websocket frame sent: ``{"conn", "path", "t_ns", "msg"}``; ``msg`` is
    the exact text sent, ``t_ns`` the send time, ``path`` the request path
    with its query.
``connections.jsonl``
    ``{"conn", "path", "t_ns", "event"}`` with ``event`` ``open`` (plus
    ``protocol``: ``gemini.v1``, ``gemini.v2`` or ``gemini.ws``), ``close``
    (plus ``code`` and ``reason`` of the first close frame, from either side)
    or ``abort`` (the connection ended with no close frame).
``book.jsonl``
    every change applied to the true book: ``{"t_ns", "event_id", "symbol",
    "side", "price", "size", "reason", "update_id"}``, ``side`` ``bid``/``ask``, ``size``
    the level's new absolute size as a decimal string (``"0"`` removes it),
    ``update_id`` the symbol's update id of the event (docs/venues/gemini.md section 3.4).
    The first lines (``reason`` ``initial``) build each book. Replaying the
    lines with ``t_ns <= T`` gives the true book at time T.
``rest.jsonl``
    every REST reply: ``{"t_ns", "start_ns", "path", "status", "event_id",
    "body"}``: time the reply was built, request time, path with query, HTTP status, the
    last engine event applied when the reply was built, and the exact body.
``faults.jsonl``
    every injected fault: ``{"t_ns", "fault", "conn", "path", ...details}``.

Lines are buffered and flushed when the simulator stops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import orjson

from tickrec.sim.market import Change, Event, SymbolSpec

__all__ = ["FILES", "TruthLog"]

#: The files a truth directory holds.
FILES = ("messages", "connections", "book", "rest", "faults")


class TruthLog:
    """Buffered JSON-lines writers for one truth directory."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stack = ExitStack()
        self._files: dict[str, TextIO] = {}
        for name in FILES:
            # Open for the log's whole life; close() closes them all.
            f = open(self.directory / f"{name}.jsonl", "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
            self._files[name] = self._stack.enter_context(f)

    def _write(self, name: str, record: dict[str, Any]) -> None:
        self._files[name].write(orjson.dumps(record).decode() + "\n")

    def message(self, conn: int, path: str, t_ns: int, text: str) -> None:
        """A frame sent on connection *conn*."""
        self._write("messages", {"conn": conn, "path": path, "t_ns": t_ns, "msg": text})

    def connection(self, conn: int, path: str, t_ns: int, event: str, **detail: Any) -> None:
        """A connection opened, closed or aborted."""
        self._write(
            "connections", {"conn": conn, "path": path, "t_ns": t_ns, "event": event, **detail}
        )

    def book(self, specs: Mapping[str, SymbolSpec], events: Iterable[Event]) -> None:
        """The book changes of *events*; each event is applied at its own time."""
        out = self._files["book"]
        for event in events:
            spec = specs[event.symbol]
            for item in event.items:
                if isinstance(item, Change):
                    line = {
                        "t_ns": event.time_ns,
                        "event_id": event.event_id,
                        "symbol": event.symbol,
                        "side": item.side,
                        "price": spec.price(item.price),
                        "size": spec.size(item.remaining),
                        "reason": item.reason,
                        "update_id": event.update_id,
                    }
                    out.write(orjson.dumps(line).decode() + "\n")

    def rest(
        self, t_ns: int, start_ns: int, path: str, status: int, event_id: int, body: str
    ) -> None:
        """A REST reply."""
        self._write(
            "rest",
            {
                "t_ns": t_ns,
                "start_ns": start_ns,
                "path": path,
                "status": status,
                "event_id": event_id,
                "body": body,
            },
        )

    def fault(self, t_ns: int, fault: str, conn: int | None, path: str, **detail: Any) -> None:
        """An injected fault."""
        self._write("faults", {"t_ns": t_ns, "fault": fault, "conn": conn, "path": path, **detail})

    def flush(self) -> None:
        """Write buffered lines to disk."""
        for f in self._files.values():
            f.flush()

    def close(self) -> None:
        """Flush and close every file."""
        self._stack.close()
