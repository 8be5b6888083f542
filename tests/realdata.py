"""Bring the real captures in ../shared/data/real into a contract dataset, for tests.

cryptofeed raw logs (SOURCES.md, "Line format"): ``<epoch>: <msg>`` received,
``<url> <- <epoch>: <msg>`` sent, ``<url> <-> <epoch>`` connection opened,
``<url> -> <epoch>: <body>`` HTTP response, ``configuration: <json>`` header.
Epoch seconds are parsed from their decimal text straight into integer ns,
never through a float.

Gemini v2 messages are split by ``symbol``; messages that belong to no single
symbol (heartbeats, the subscribe, the connection) go to every subscribed
symbol (ARCHITECTURE section 2.1). ``seq`` is the line's position in the file,
the total order of receipt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from tickrec import contract
from tickrec.contract import Row

__all__ = [
    "GEMINI_V1",
    "GEMINI_V2",
    "REAL",
    "Line",
    "epoch_to_ns",
    "import_gemini_v1",
    "import_gemini_v2",
    "read_cryptofeed",
]

REAL = Path(os.environ.get("TICKREC_REAL_DATA", Path(__file__).parents[2] / "shared/data/real"))
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real")
GEMINI_V2 = REAL / "gemini_v2" / "GEMINI.ws.1.0"
GEMINI_V1 = REAL / "gemini_v1" / "btcusd_v1_2018-09-26.jsonl"


class Line(NamedTuple):
    """One record of a cryptofeed log: ``kind`` is recv, sent, connect, http or config."""

    kind: str
    url: str
    recv_ns: int
    text: str


def epoch_to_ns(text: str) -> int:
    """Exact ns of a decimal epoch-seconds string (digits past the ninth decimal must be 0)."""
    whole, _, frac = text.strip().partition(".")
    if len(frac) > 9 and frac[9:].strip("0"):
        raise ValueError(f"{text!r}: finer than a nanosecond")
    return int(whole) * 1_000_000_000 + int((frac[:9] or "0").ljust(9, "0"))


def read_cryptofeed(path: Path) -> Iterator[Line]:
    """The records of a cryptofeed raw log, in file order."""
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.rstrip("\n")
            if not line or line.startswith("configuration:"):
                continue
            head, sep, body = line.partition(": ")
            if " <-> " in head and not sep:
                url, _, epoch = line.partition(" <-> ")
                yield Line("connect", url, epoch_to_ns(epoch), "")
            elif " <- " in head:
                url, _, epoch = head.partition(" <- ")
                yield Line("sent", url, epoch_to_ns(epoch), body)
            elif " -> " in head:
                url, _, epoch = head.partition(" -> ")
                yield Line("http", url, epoch_to_ns(epoch), body)
            else:
                yield Line("recv", "", epoch_to_ns(head), body)


def _write(root: Path, symbol: str, run_id: str, rows: list[Row]) -> Path:
    return contract.write_part(root, "gemini", symbol, run_id, 0, contract.rows_to_table(rows))


def import_gemini_v2(
    root: Path, path: Path = GEMINI_V2, run_id: str = "cryptofeed-v2", drop: Iterable[int] = ()
) -> dict[str, list[Row]]:
    """Write the v2 capture as one partition per symbol; return the rows by symbol.

    *drop* lists record numbers (0-based, in :func:`read_cryptofeed` order) to
    leave out, to simulate lost messages.
    """
    lines = list(read_cryptofeed(path))
    symbols: list[str] = []
    for line in lines:
        if line.kind == "sent":
            for sub in json.loads(line.text).get("subscriptions", []):
                symbols += [s for s in sub.get("symbols", []) if s not in symbols]
    skip = set(drop)
    rows: dict[str, list[Row]] = {s: [] for s in symbols}
    for seq, line in enumerate(lines):
        if seq in skip or line.kind == "http":
            continue
        targets = symbols
        if line.kind == "connect":
            source, payload = "event", contract.event_payload("connect", url=line.url)
        else:
            source, payload = ("ws_sent" if line.kind == "sent" else "ws"), line.text
            msg = json.loads(line.text)
            if "symbol" in msg:
                targets = [msg["symbol"]]
        for sym in targets:
            rows[sym].append(Row(line.recv_ns, seq, run_id, 1, "gemini.v2", source, payload))
    for sym, sym_rows in rows.items():
        _write(root, sym, run_id, sym_rows)
    return rows


def import_gemini_v1(
    root: Path,
    path: Path = GEMINI_V1,
    symbol: str = "BTCUSD",
    run_id: str = "jsonl-v1",
    latency_ns: int = 25_000_000,
    drop: Iterable[int] = (),
) -> list[Row]:
    """Write the v1 JSONL file as one partition; return its rows.

    The file has no receive times, so each message's is its ``timestampms``
    plus *latency_ns*. ``venue_seq`` is the message's ``socket_sequence``.
    *drop* lists 0-based line numbers to leave out.
    """
    skip = set(drop)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for seq, text in enumerate(fh):
            if seq in skip or not text.strip():
                continue
            msg = json.loads(text)
            recv = msg["timestampms"] * 1_000_000 + latency_ns
            rows.append(
                Row(
                    recv,
                    seq,
                    run_id,
                    1,
                    "gemini.v1",
                    "ws",
                    text.rstrip("\n"),
                    msg["timestampms"] * 1_000_000,
                    msg["socket_sequence"],
                )
            )
    _write(root, symbol, run_id, rows)
    return rows
