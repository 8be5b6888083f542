"""Bring the real captures in tests/data/real into a contract dataset, for tests.

cryptofeed raw logs (tests/data/real/SOURCES.md, "Line format"): ``<epoch>: <msg>`` received,
``<url> <- <epoch>: <msg>`` sent, ``<url> <-> <epoch>`` connection opened,
``<url> -> <epoch>: <body>`` HTTP response, ``configuration: <json>`` header.
Epoch seconds are parsed from their decimal text straight into integer ns,
never through a float.

:func:`read_cryptofeed` is the tests' own reader of the raw file, an oracle
independent of :mod:`recorder.importer`, which brings the captures into a
dataset the way a user would (``tickrec import``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from recorder.importer import import_cryptofeed, import_lines
from tickrec import contract

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

#: The real captures, with their sources and licences (SOURCES.md there).
REAL = Path(__file__).resolve().parent / "data" / "real"
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


def import_gemini_v2(root: Path, path: Path = GEMINI_V2) -> None:
    """Import the v2 capture with ``tickrec import cryptofeed``: one partition per symbol."""
    import_cryptofeed([path], root, strict=True)


def import_gemini_v1(
    root: Path,
    path: Path = GEMINI_V1,
    symbol: str = "BTCUSD",
    latency_ns: int = 25_000_000,
    drop: Iterable[int] = (),
) -> list[int]:
    """Import the v1 JSONL file with ``tickrec import lines``; return the rows' recv_ns.

    The file has no receive times, so each line is prefixed (Tardis style)
    with its ``timestampms`` plus *latency_ns*. *drop* lists 0-based line
    numbers to leave out, to simulate lost messages.
    """
    skip = set(drop)
    stamped = root / f"{path.stem}.stamped.txt"
    with open(path, encoding="utf-8") as src, open(stamped, "w", encoding="utf-8") as out:
        for n, text in enumerate(src):
            if n in skip or not text.strip():
                continue
            recv = json.loads(text)["timestampms"] * 1_000_000 + latency_ns
            out.write(f"{recv // 10**9}.{recv % 10**9:09d} {text}")
    import_lines([stamped], root, "gemini", "v1", symbol=symbol, strict=True)
    date = contract.date_of_ns(recv)
    table = contract.read_partition(root, "gemini", date, symbol, columns=["recv_ts"])
    return table.column("recv_ts").cast("int64").to_pylist()
