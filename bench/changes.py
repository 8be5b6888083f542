"""The day's book changes, decoded once for every peer, and the checksums of their books.

Every peer is fed the same flat stream of book operations, decoded here
from the raw payloads independently of tickrec's decoder (so a checksum
match also checks tickrec's decoding):

- ``SET``: set level ``px`` of ``side`` to the absolute size ``sz``; 0
  removes it (Gemini v1 ``remaining``; docs/venues/gemini.md section 1);
- ``CLEAR``: forget the book, where tickrec's replay does (docs/architecture.md
  section 3): a new connection, the connection's ``disconnect`` event, and
  the start of a ``reason: initial`` snapshot (on Binance: of a sync snapshot).

Prices are integer ticks of 0.01 and sizes integer units of 1e-8 (the
synthetic day's grids), so peers get exact, hashable numbers and pay for no
string parsing; only the naive baseline decodes the raw payloads itself.

Two results prove that books agree, whatever structure holds them:

- :func:`grid_check`: a hash of the top-10 rows on a 1 s grid, where the row
  at grid time ``T`` is the book after every operation with ``ts <= T``
  (absent levels are price 0, size 0);
- :func:`bbo_check`: the count of changes and the sums, modulo
  :data:`BBO_MOD`, of the best bid and ask prices and sizes read after every
  ``SET`` (an empty side reads as 0, 0).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

__all__ = [
    "BBO_MOD",
    "CLEAR",
    "DEPTH",
    "PRICE_SCALE",
    "SET",
    "SIZE_SCALE",
    "Changes",
    "bbo_check",
    "decode_binance",
    "decode_changes",
    "grid_check",
    "load_changes",
    "time_grid",
    "units",
]

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

SET = 0
CLEAR = 1
BID = 0
ASK = 1
PRICE_SCALE = 2
SIZE_SCALE = 8
DEPTH = 10
BBO_MOD = 2**31 - 1
_NS = 1_000_000_000
_SIDES = {"bid": BID, "ask": ASK}


def units(text: str, scale: int) -> int:
    """A non-negative decimal string as an exact integer count of ``10**-scale``."""
    whole, _, frac = text.partition(".")
    if len(frac) > scale:
        frac = frac.rstrip("0")  # Binance pads to eight decimals
    if len(frac) > scale:
        raise ValueError(f"{text!r} has more than {scale} decimals")
    return int(whole) * 10**scale + (int(frac.ljust(scale, "0")) if frac else 0)


def _reader(scale: int) -> Callable[[str], int]:
    """:func:`units` at *scale*, each distinct text read once (for one decode)."""
    seen: dict[str, int] = {}

    def read(text: str) -> int:
        got = seen.get(text)
        if got is None:
            got = seen[text] = units(text, scale)
        return got

    return read


@dataclass(frozen=True)
class Changes:
    """Book operations in replay order; ``row`` is the raw row each came from."""

    ts: I64
    op: I8
    side: I8
    px: I64
    sz: I64
    row: I64

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def n_changes(self) -> int:
        """The number of ``SET`` operations (book changes)."""
        return int(np.count_nonzero(self.op == SET))

    def prefix(self, rows: int) -> Changes:
        """The operations that come from the first *rows* raw rows."""
        stop = int(np.searchsorted(self.row, rows, "left"))
        return Changes(*(getattr(self, f.name)[:stop] for f in fields(self)))


def _column(table: pa.Table, name: str) -> list[Any]:
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    elif pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return col.to_pylist()


def decode_changes(table: pa.Table) -> Changes:
    """Decode a partition (a contract table in contract order) into :class:`Changes`:
    Gemini v1, or Binance spot (:func:`decode_binance`)."""
    protocols = set(table.column("protocol").unique().cast(pa.string()).to_pylist())
    if "binance.spot" in protocols:
        return decode_binance(table)
    return _decode_gemini_v1(table)


def _decode_gemini_v1(table: pa.Table) -> Changes:
    recv = np.maximum.accumulate(table.column("recv_ts").cast(pa.int64()).to_numpy())
    sources = _column(table, "source")
    conns = _column(table, "conn_id")
    payloads = _column(table, "payload")
    ts: list[int] = []
    op: list[int] = []
    side: list[int] = []
    px: list[int] = []
    sz: list[int] = []
    row: list[int] = []
    price, size = _reader(PRICE_SCALE), _reader(SIZE_SCALE)
    cur = None

    def clear(i: int) -> None:
        ts.append(int(recv[i]))
        op.append(CLEAR)
        side.append(0)
        px.append(0)
        sz.append(0)
        row.append(i)

    for i, src in enumerate(sources):
        if src == "event":
            if conns[i] == cur and orjson.loads(payloads[i]).get("event") == "disconnect":
                clear(i)
                cur = None
            continue
        if src != "ws":
            continue
        if conns[i] != cur:
            cur = conns[i]
            clear(i)
        msg = orjson.loads(payloads[i])
        if msg.get("type") != "update":
            continue
        events = msg["events"]
        if any(e.get("reason") == "initial" for e in events):
            clear(i)
        t = int(recv[i])
        for e in events:
            if e["type"] != "change":
                continue
            ts.append(t)
            op.append(SET)
            side.append(_SIDES[e["side"]])
            px.append(price(e["price"]))
            sz.append(size(e["remaining"]))
            row.append(i)
    return Changes(
        np.asarray(ts, np.int64),
        np.asarray(op, np.int8),
        np.asarray(side, np.int8),
        np.asarray(px, np.int64),
        np.asarray(sz, np.int64),
        np.asarray(row, np.int64),
    )


def decode_binance(table: pa.Table) -> Changes:
    """Decode a Binance spot partition by Binance's own procedure ("How to manage a
    local order book correctly"), written here apart from tickrec's:

    - a new connection clears the book, and so does its ``disconnect`` event;
    - its ``depthUpdate`` diffs are held until its sync snapshot (a ``rest`` row
      of the connection), which is the book; of the held diffs, those with
      ``u <= lastUpdateId`` are dropped and the rest applied, all at the
      snapshot's row; after that each diff is applied as it comes;
    - each ``[price, quantity]`` sets the level, a quantity of 0 removes it.

    The synthetic day has no gaps, so a gap is an error here, not a resync.
    """
    recv = np.maximum.accumulate(table.column("recv_ts").cast(pa.int64()).to_numpy())
    sources = _column(table, "source")
    conns = _column(table, "conn_id")
    payloads = _column(table, "payload")
    out: tuple[list[int], ...] = ([], [], [], [], [], [])  # ts, op, side, px, sz, row
    price, size = _reader(PRICE_SCALE), _reader(SIZE_SCALE)
    cur = None
    held: list[dict[str, Any]] | None = []  # None once in sync
    last_u = 0

    def put(i: int, kind: int, s: int = 0, p: int = 0, q: int = 0) -> None:
        for col, v in zip(out, (int(recv[i]), kind, s, p, q, i), strict=True):
            col.append(v)

    def level(i: int, s: int, p: str, q: str) -> None:
        put(i, SET, s, price(p), size(q))

    def apply(i: int, diff: dict[str, Any]) -> None:
        nonlocal last_u
        if diff["U"] != last_u + 1:
            raise ValueError(f"row {i}: U {diff['U']} does not follow u {last_u}")
        for key, s in (("b", BID), ("a", ASK)):
            for p, q in diff[key]:
                level(i, s, p, q)
        last_u = diff["u"]

    for i, src in enumerate(sources):
        if src == "event":
            if conns[i] == cur and orjson.loads(payloads[i]).get("event") == "disconnect":
                put(i, CLEAR)
                cur, held = None, []
            continue
        if conns[i] != cur and src in ("ws", "rest") and conns[i] != 0:
            cur, held = conns[i], []
            put(i, CLEAR)
        if src == "rest" and conns[i] == cur and held is not None:
            snap = orjson.loads(payloads[i])
            put(i, CLEAR)
            for key, s in (("bids", BID), ("asks", ASK)):
                for p, q in snap[key]:
                    level(i, s, p, q)
            last_u = snap["lastUpdateId"]
            for diff in held:
                if diff["u"] > last_u:
                    apply(i, diff)
            held = None
        elif src == "ws":
            msg = orjson.loads(payloads[i])["data"]
            if msg.get("e") != "depthUpdate":
                continue
            if held is not None:
                held.append(msg)
            else:
                apply(i, msg)
    return Changes(*(np.asarray(col, t) for col, t in zip(out, _TYPES, strict=True)))


_TYPES = (np.int64, np.int8, np.int8, np.int64, np.int64, np.int64)


def load_changes(table: pa.Table, cache: Path) -> Changes:
    """:func:`decode_changes`, kept in *cache* (an ``.npz`` file) after the first time."""
    if cache.is_file():
        with np.load(cache) as data:
            return Changes(*(data[f.name] for f in fields(Changes)))
    changes = decode_changes(table)
    tmp = cache.with_name(f".{cache.stem}.tmp.npz")
    np.savez(tmp, **{f.name: getattr(changes, f.name) for f in fields(Changes)})
    tmp.rename(cache)
    return changes


def time_grid(first_ns: int, last_ns: int, every_ns: int = _NS) -> I64:
    """Multiples of *every_ns* since UTC midnight from *first_ns* to *last_ns* (inclusive)."""
    k0 = -(-first_ns // every_ns)
    k1 = last_ns // every_ns
    return np.arange(k0, k1 + 1, dtype=np.int64) * every_ns


def grid_check(ts: I64, px: I64, sz: I64) -> str:
    """Checksum of top-of-book rows: ``px``/``sz`` of shape ``(rows, 2, DEPTH)``, bid side 0."""
    mat = np.concatenate(
        [ts.reshape(-1, 1), px[:, 0, :], sz[:, 0, :], px[:, 1, :], sz[:, 1, :]], axis=1
    )
    digest = hashlib.blake2b(np.ascontiguousarray(mat, "<i8").tobytes()).hexdigest()
    return f"grid:{len(ts)}:{digest[:16]}"


def bbo_check(count: int, bid_px: int, bid_sz: int, ask_px: int, ask_sz: int) -> str:
    """Checksum of the best bid/ask read after each of *count* changes, from their sums."""
    sums = ":".join(str(v % BBO_MOD) for v in (bid_px, bid_sz, ask_px, ask_sz))
    return f"bbo:{count}:{sums}"
