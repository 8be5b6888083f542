"""The simulator's ground truth and a recorded partition, read without ``replay/``.

End-to-end tests compare what the replayer says with what really happened.
This module rebuilds "what really happened" on its own, from plain dicts of
:class:`~decimal.Decimal`:

- :class:`TrueBooks` replays the simulator's ``book.jsonl`` (every change
  applied to the true book, tagged with its engine event id; see
  :mod:`tickrec.sim.truth`) and answers "the book of a symbol after engine
  event E";
- :class:`Partition` reads one recorded partition in contract order and
  ties each received message to the engine event it brought the book to.
  A v1 ``update`` names it (``eventId``; the initial update carries the last
  event applied when the connection opened). A v2 ``l2_updates`` does not, so
  a connection's snapshot is located among the true book states and each
  later ``l2_updates`` of the symbol is matched, change for change, with the
  symbol's next engine event.

The true book at time T is then the true book after the last engine event
whose message the recorder had received by T (``recv_ts <= T``). Receive
times are taken as the replay contract defines them: the running maximum of
``recv_ts`` in row order (docs/architecture.md section 2.3; rows of other threads can
be stamped a little out of order).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from tickrec import contract

__all__ = [
    "LOSS_EVENTS",
    "UNREADABLE",
    "Book",
    "Partition",
    "TrueBooks",
    "load_json",
    "read_jsonl",
    "rest_book",
    "symbols_of_path",
    "ticks",
    "top",
]

#: ``side -> price -> size``; sides ``bid`` and ``ask``.
Book = dict[str, dict[Decimal, Decimal]]
#: A change: side, price, new absolute size (0 removes the level).
Change = tuple[str, Decimal, Decimal]
#: Position of a received message that could not be read: the engine event it carried is unknown.
UNREADABLE = -1
#: Recorder events that end a connection (as in the recorder's event list).
LOSS_EVENTS = frozenset({"disconnect", "error", "stale", "shutdown"})

_V2_SIDES = {"buy": "bid", "sell": "ask"}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_json(text: str) -> Any:
    """Parsed JSON, or None if *text* is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _empty() -> Book:
    return {"bid": {}, "ask": {}}


def _apply(book: Book, changes: list[Change]) -> None:
    for side, price, size in changes:
        if size:
            book[side][price] = size
        else:
            book[side].pop(price, None)


def top(book: Book, side: str, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
    """Levels of one side, best first; all of them unless *depth*."""
    levels = sorted(book[side].items(), reverse=side == "bid")
    return levels if depth is None else levels[:depth]


def ticks(value: Decimal, scale: int) -> int:
    """*value* as an integer of ``10**-scale``; it must be exact."""
    scaled = value.scaleb(scale)
    assert scaled == scaled.to_integral_value(), f"{value} is not a multiple of 1e-{scale}"
    return int(scaled)


def rest_book(body: Any) -> Book:
    """The book of a parsed ``/v1/book`` reply."""
    book = _empty()
    for side, key in (("bid", "bids"), ("ask", "asks")):
        for level in body[key]:
            book[side][Decimal(level["price"])] = Decimal(level["amount"])
    return book


def symbols_of_path(path: str, symbols: tuple[str, ...]) -> tuple[str, ...]:
    """The symbols a simulator connection served: one for v1, all for v2."""
    parts = path.split("?")[0].strip("/").split("/")
    if parts[:2] == ["v1", "marketdata"]:
        return (parts[2].upper(),)
    return symbols


class TrueBooks:
    """The true book of each symbol after any engine event, from ``book.jsonl``."""

    def __init__(self, truth_dir: Path) -> None:
        self.events: dict[str, list[tuple[int, list[Change]]]] = {}
        for line in read_jsonl(truth_dir / "book.jsonl"):
            events = self.events.setdefault(line["symbol"], [])
            change = (line["side"], Decimal(line["price"]), Decimal(line["size"]))
            if events and events[-1][0] == line["event_id"]:
                events[-1][1].append(change)
            else:
                events.append((line["event_id"], [change]))
        self.ids = {s: [e for e, _ in events] for s, events in self.events.items()}
        for ids in self.ids.values():
            assert ids == sorted(set(ids)), "engine event ids must increase"
        self._cursor: dict[str, tuple[int, Book]] = {}

    def after(self, symbol: str, event_id: int) -> Book:
        """The book of *symbol* once every engine event up to *event_id* is applied."""
        stop = bisect.bisect_right(self.ids[symbol], event_id)
        done, book = self._cursor.get(symbol, (0, _empty()))
        if stop < done:
            done, book = 0, _empty()
        for _, changes in self.events[symbol][done:stop]:
            _apply(book, changes)
        self._cursor[symbol] = (stop, book)
        return {side: dict(levels) for side, levels in book.items()}

    def states(self, symbol: str) -> Iterator[tuple[int, Book]]:
        """``(event_id, book after it)`` for every event of *symbol*; one shared book, read only."""
        book = _empty()
        for event_id, changes in self.events[symbol]:
            _apply(book, changes)
            yield event_id, book

    def changes(self, symbol: str, index: int) -> tuple[int, list[Change]]:
        """The *index*-th engine event of *symbol*: its id and its changes."""
        return self.events[symbol][index]


@dataclass
class Partition:
    """One recorded partition (venue gemini, one date, one symbol) in contract order."""

    symbol: str
    recv: list[int]
    rows: list[dict[str, Any]]
    #: Row index -> engine event id the symbol's book stood at once that message was received
    #: (:data:`UNREADABLE` when the message could not be read).
    positions: dict[int, int] = field(default_factory=dict)
    #: Receive times of the rows that carried a complete book of the symbol.
    snapshots: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path, symbol: str, books: TrueBooks) -> Partition:
        """Read the symbol's only partition under *root* and place its messages."""
        (part,) = [p for p in contract.list_partitions(root) if p.symbol == symbol]
        table = contract.read_partition(root, part.venue, part.date, symbol)
        recv = table.column("recv_ts").cast(pa.int64()).to_pylist()
        for i in range(1, len(recv)):
            recv[i] = max(recv[i], recv[i - 1])
        rows = table.drop_columns(["recv_ts"]).to_pylist()
        for row, sent in zip(
            rows, table.column("sent_ts").cast(pa.int64()).to_pylist(), strict=True
        ):
            row["sent_ts"] = sent
        self = cls(symbol, recv, rows)
        protocols = {r["protocol"] for r in rows if r["source"] == "ws"}
        if protocols == {"gemini.v1"}:
            self._place_v1()
        elif protocols == {"gemini.v2"}:
            self._place_v2(books)
        else:
            raise AssertionError(f"one websocket protocol expected, not {protocols}")
        return self

    # --- the partition's facts

    @property
    def date(self) -> str:
        """UTC date of the partition."""
        return contract.date_of_ns(self.recv[0])

    @property
    def last_ts(self) -> int:
        """Receive time of the last row."""
        return self.recv[-1]

    def events(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        """``(recv, payload)`` of the recorder events called *name*."""
        out = []
        for t, row in zip(self.recv, self.rows, strict=True):
            if row["source"] == "event":
                payload = json.loads(row["payload"])
                if payload["event"] == name:
                    out.append((t, payload))
        return out

    @property
    def shutdown_ts(self) -> int:
        """Receive time of the run's shutdown event."""
        ((t, _),) = self.events("shutdown")
        return t

    @property
    def final_loss_ts(self) -> int:
        """When the run's last connection was lost: the first loss event after its last message.

        Usually the shutdown event; a frame that arrives after it moves the loss
        to the connection's own ``disconnect`` event.
        """
        last_ws = max(i for i, _, _ in self.ws())
        for i in range(last_ws + 1, len(self.rows)):
            row = self.rows[i]
            if row["source"] == "event" and json.loads(row["payload"])["event"] in LOSS_EVENTS:
                return self.recv[i]
        raise AssertionError(f"{self.symbol}: the last connection has no loss event")

    def ws(self) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """``(row index, recv, row)`` of the received websocket messages."""
        for i, (t, row) in enumerate(zip(self.recv, self.rows, strict=True)):
            if row["source"] == "ws":
                yield i, t, row

    def loss_after(self, t: int) -> int | None:
        """Receive time of the first event at or after *t* that ended a connection."""
        for when, row in zip(self.recv, self.rows, strict=True):
            if (
                when >= t
                and row["source"] == "event"
                and json.loads(row["payload"])["event"] in LOSS_EVENTS
            ):
                return when
        return None

    @property
    def conn_ends(self) -> list[int]:
        """When connections ended: first rows of new connections, and losses.

        A connection is lost at its first loss event (its own, or the run's)
        after its last received message, as the replay contract defines it.
        """
        last_ws: dict[tuple[str, int], int] = {}
        for i, _, row in self.ws():
            last_ws[(row["run_id"], row["conn_id"])] = i
        out: list[int] = []
        cur: tuple[str, int] | None = None
        live = False
        for i, (t, row) in enumerate(zip(self.recv, self.rows, strict=True)):
            key = (row["run_id"], row["conn_id"])
            if row["source"] in ("ws", "ws_sent") and key != cur:
                if cur is not None:
                    out.append(t)
                cur, live = key, True
            elif (
                row["source"] == "event"
                and live
                and cur is not None
                and row["conn_id"] in (0, cur[1])
                and i > last_ws.get(cur, -1)
                and json.loads(row["payload"])["event"] in LOSS_EVENTS
            ):
                out.append(t)
                live = False
        return sorted(out)

    def next_snapshot(self, t: int) -> int | None:
        """Receive time of the first complete book strictly after *t*."""
        k = bisect.bisect_right(self.snapshots, t)
        return self.snapshots[k] if k < len(self.snapshots) else None

    def event_at(self, t: int) -> int | None:
        """The engine event id the received messages had brought the book to at time *t*.

        None before any message that placed the book, or after an unreadable one.
        """
        last: int | None = None
        for i, pos in self.positions.items():  # insertion order is row order
            if self.recv[i] > t:
                break
            last = pos
        return None if last is None or last == UNREADABLE else last

    def events_at(self, t: int) -> set[int]:
        """Where each connection's received messages had brought the book at time *t*.

        One event id per connection whose last placed message by then was
        readable: with overlapping connections (a make-before-break handover)
        a valid book must be one of these.
        """
        last: dict[tuple[Any, Any], int] = {}
        for i, pos in self.positions.items():  # insertion order is row order
            if self.recv[i] > t:
                break
            last[(self.rows[i]["run_id"], self.rows[i]["conn_id"])] = pos
        return {pos for pos in last.values() if pos != UNREADABLE}

    # --- placing messages on the engine's event sequence

    def _place_v1(self) -> None:
        for i, t, row in self.ws():
            msg = load_json(row["payload"])
            if msg is None:
                self.positions[i] = UNREADABLE
            elif msg.get("type") == "update":
                self.positions[i] = msg["eventId"]
                if any(e.get("reason") == "initial" for e in msg["events"]):
                    self.snapshots.append(t)

    def _place_v2(self, books: TrueBooks) -> None:
        by_conn: dict[tuple[str, int], list[tuple[int, int, Any]]] = {}
        for i, t, row in self.ws():
            msg = load_json(row["payload"])
            key = (row["run_id"], row["conn_id"])
            if msg is None:
                by_conn.setdefault(key, []).append((i, t, None))
            elif msg.get("type") == "l2_updates" and msg.get("symbol") == self.symbol:
                by_conn.setdefault(key, []).append((i, t, msg))
        for frames in by_conn.values():
            self._align_v2(books, frames)

    def _align_v2(self, books: TrueBooks, frames: list[tuple[int, int, Any]]) -> None:
        """Place one connection's ``l2_updates`` (None for unreadable messages) on the events."""
        while frames and frames[0][2] is None:
            # Unreadable before the snapshot: the snapshot, if it comes, starts afresh.
            self.positions[frames.pop(0)[0]] = UNREADABLE
        if not frames or "trades" not in frames[0][2]:
            # No readable snapshot: nothing on this connection is known.
            self.positions.update((i, UNREADABLE) for i, _, _ in frames)
            self.positions = dict(sorted(self.positions.items()))
            return
        i0, t0, snap = frames[0]
        book = _empty()
        for side, price, size in snap["changes"]:
            book[_V2_SIDES[side]][Decimal(price)] = Decimal(size)
        candidates = [k for k, (_, state) in enumerate(books.states(self.symbol)) if state == book]
        later: list[tuple[int, list[Change] | None]] = []
        for i, _, msg in frames[1:]:
            changes = None
            if msg is not None:
                changes = [(_V2_SIDES[s], Decimal(p), Decimal(q)) for s, p, q in msg["changes"]]
            later.append((i, changes))
        readable = next((n for n, (_, c) in enumerate(later) if c is None), len(later))

        def fits(k: int) -> bool:
            events = books.events[self.symbol]
            return k + readable < len(events) and all(
                changes == events[k + 1 + n][1] for n, (_, changes) in enumerate(later[:readable])
            )

        fitting = [k for k in candidates if fits(k)]
        assert len(fitting) == 1, (
            f"{self.symbol}: the v2 snapshot at {t0} and the {readable} updates after it "
            f"match {len(fitting)} places in the true event sequence, not exactly one"
        )
        (k,) = fitting
        self.positions[i0] = books.changes(self.symbol, k)[0]
        self.snapshots.append(t0)
        for n, (i, _) in enumerate(later):
            self.positions[i] = (
                books.changes(self.symbol, k + 1 + n)[0] if n < readable else UNREADABLE
            )
        self.positions = dict(sorted(self.positions.items()))
        self.snapshots.sort()
