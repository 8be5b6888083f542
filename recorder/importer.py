"""Bring captures made by other tools into the dataset (``tickrec import``).

Two formats are read:

- **cryptofeed raw logs** (its ``AsyncFileCallback``): one record per line,
  ``<epoch>: <message>`` received, ``<url> <- <epoch>: <message>`` sent,
  ``<url> <-> <epoch>`` connection opened, ``<url> -> <epoch>: <body>`` an
  HTTP response, ``configuration: <json>`` a header;
- **plain lines**: one message per line, optionally prefixed by its receive
  time (``<ISO-8601 or epoch seconds> <json>``, the Tardis raw style).

Each input file becomes one run whose id is derived from the file's content
hash, so importing the same file twice adds nothing the second time. Times
are parsed exactly from their decimal text, never through a float. Every
input line is parsed before anything is written, and parts already written
are removed if a later write fails, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from tickrec import contract
from tickrec.contract import RUN_CONN_ID, Row
from tickrec.errors import DatasetError, ProtocolError, UsageError
from tickrec.progress import Progress
from tickrec.store import Root, RootLike, as_root
from tickrec.venues import VENUES, WIRES, header_of, value_problem
from tickrec.venues.base import Venue, Wire

__all__ = [
    "ImportResult",
    "import_cryptofeed",
    "import_lines",
    "parse_epoch_ns",
    "parse_time_ns",
]

_NUM = r"(\d+(?:\.\d+)?)"
_SENT = re.compile(rf"^(\S+) <- {_NUM}: (.*)$", re.DOTALL)
_CONNECT = re.compile(rf"^(\S+) <-> {_NUM}$")
_HTTP = re.compile(rf"^(\S+) -> {_NUM}: (.*)$", re.DOTALL)
_RECEIVED = re.compile(rf"^{_NUM}: (.*)$", re.DOTALL)
_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$"
)


#: Receive times the contract can hold: ``timestamp[ns]`` is int64 ns, up to 2262-04-11.
_MAX_NS = 2**63 - 1


def _in_range(ns: int, text: str) -> int:
    if not 0 <= ns <= _MAX_NS:
        raise ValueError(f"time out of range: {text!r} (after 2262-04-11 or before 1970)")
    return ns


def parse_epoch_ns(text: str) -> int:
    """Nanoseconds from epoch seconds written in decimal (``1624493666.4493928``), exactly."""
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 9 or len(whole) > 19:
        raise ValueError(f"not epoch seconds: {text!r}")
    return _in_range(int(whole) * 1_000_000_000 + int((frac or "0").ljust(9, "0")), text)


def parse_time_ns(text: str) -> int:
    """Nanoseconds from epoch seconds or an ISO-8601 UTC time, exactly (up to ns precision)."""
    if text[:1].isdigit() and "-" not in text:
        return parse_epoch_ns(text)
    m = _ISO.match(text)
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    day, hh, mm, ss, frac, zone = m.groups()
    base = dt.datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}").replace(tzinfo=dt.UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        base -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    seconds = int(base.timestamp())
    return _in_range(seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0")), text)


@dataclass
class ImportResult:
    """What one imported file produced."""

    source: Path
    run_id: str
    rows: int = 0
    parts: list[Root] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    already_imported: bool = False
    with_files: tuple[Path, ...] = ()
    """Files imported into the same run (a cryptofeed capture's REST log)."""


@dataclass
class _Record:
    """One parsed input line, before it is split by symbol."""

    recv_ns: int
    conn_id: int
    protocol: str
    source: str
    payload: str
    symbols: tuple[str, ...] | None  # None: every symbol of `conn` (or of the file)
    conn: _Connection | None = None
    sent_ns: int | None = None


@dataclass
class _Connection:
    protocol: str
    symbols: set[str] = field(default_factory=set)
    opened_ns: int = 0


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from None
    # Lines end in LF or CRLF; a CR is never part of a JSON message's own text.
    return [line.removesuffix("\r") for line in text.split("\n")]


_SYMBOL = re.compile(r"[A-Za-z0-9]+")


def _classify_url(
    url: str, venue: Venue | None = None, protocol: Wire | None = None, websocket: bool = False
) -> tuple[str, str, str | None]:
    """``(venue, protocol, symbol or None)`` of a captured URL, or a clear error.

    The host must be one a venue names exactly (:attr:`~tickrec.venues.base.Venue.hosts`),
    unless *venue* is given (a capture taken through a proxy or a mirror), and
    the path must be plain: no ``.`` or ``..`` segment, no empty segment
    inside it, nothing percent-encoded, and a symbol of letters and digits
    only. The venue reads the path (:attr:`~tickrec.venues.base.Venue.classify`);
    a given *protocol* is taken for every *websocket* URL whose path it cannot read.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if venue is None:
        venue = next((v for v in VENUES.values() if host in v.hosts), None)
    if venue is None:
        raise ProtocolError(
            f"unknown URL {url!r}: host {host!r} is not a known venue (give --venue for a proxy)"
        )
    segments = parts.path.rstrip("/").split("/")[1:]
    if any(seg in ("", ".", "..") or "%" in seg for seg in segments):
        raise ProtocolError(f"unknown URL {url!r}: the path is not a plain one")
    found = venue.classify(segments, parts.query)
    if protocol is not None and websocket and (found is None or found[0] != protocol.name):
        found = protocol.name, None
    if found is None:
        raise ProtocolError(f"unknown URL {url!r}: cannot tell the protocol")
    protocol_name, name = found
    if name is not None and not _SYMBOL.fullmatch(name):
        raise ProtocolError(f"unknown URL {url!r}: {name!r} is not a symbol")
    return venue.name, protocol_name, None if name is None else name.upper()


def _message_symbols(protocol: str, payload: str, conn: _Connection) -> tuple[str, ...] | None:
    """Target symbols of a received message: its own symbol, or None for the whole connection."""
    symbol = header_of(protocol, payload).symbol
    if symbol is None:
        return None
    symbol = symbol.upper()
    conn.symbols.add(symbol)
    return (symbol,)


def _sent_symbols(payload: str, conn: _Connection) -> None:
    """Learn a v2 connection's symbols from its subscribe message."""
    try:
        body = orjson.loads(payload)
        for sub in body.get("subscriptions", []):
            conn.symbols.update(s.upper() for s in sub.get("symbols", []) if isinstance(s, str))
    except (ValueError, AttributeError, TypeError):
        pass  # an unreadable sent message is still stored; it just names no symbols


def _parse_cryptofeed(
    path: Path,
    lines: Sequence[str],
    strict: bool,
    skipped: list[str],
    conn_id: int = 0,
    venue: Venue | None = None,
    protocol: Wire | None = None,
) -> tuple[str, list[_Record]]:
    """The records of one cryptofeed file; its connections are numbered after *conn_id*.
    *venue* and *protocol* override what the URLs say (:func:`_classify_url`)."""
    records: list[_Record] = []
    conn: _Connection | None = None
    venues: set[str] = set()

    def bad(
        lineno: int, why: str, symbols: tuple[str, ...] | None = None, mark: bool = True
    ) -> None:
        message = f"{path}:{lineno}: {why}"
        if strict:
            raise DatasetError(message)
        skipped.append(message)
        if mark and conn is not None:
            # The line may have changed the book: the replayer marks it invalid there.
            ns = records[-1].recv_ns if records else 0
            payload = _skipped_payload(path, lineno, why)
            records.append(_Record(ns, conn_id, conn.protocol, "event", payload, symbols, conn))

    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("configuration: "):
            continue
        try:
            if m := _RECEIVED.match(line):
                if conn is None:
                    bad(lineno, "received message before any connection line")
                    continue
                ns, payload = parse_epoch_ns(m.group(1)), m.group(2)
                symbols = _message_symbols(conn.protocol, payload, conn)
                if problem := value_problem(conn.protocol, payload):
                    bad(lineno, problem, symbols)
                    continue
                records.append(_Record(ns, conn_id, conn.protocol, "ws", payload, symbols, conn))
            elif m := _CONNECT.match(line):
                name, wire, symbol = _classify_url(m.group(1), venue, protocol, websocket=True)
                venues.add(name)
                conn_id += 1
                ns = parse_epoch_ns(m.group(2))
                conn = _Connection(wire, {symbol} if symbol else set(), ns)
                payload = contract.event_payload("connect", url=m.group(1))
                records.append(_Record(ns, conn_id, wire, "event", payload, None, conn))
            elif m := _SENT.match(line):
                if conn is None:
                    bad(lineno, "sent message before any connection line")
                    continue
                ns, payload = parse_epoch_ns(m.group(2)), m.group(3)
                _sent_symbols(payload, conn)
                records.append(_Record(ns, conn_id, conn.protocol, "ws_sent", payload, None, conn))
            elif m := _HTTP.match(line):
                name, wire, symbol = _classify_url(m.group(1), venue)
                venues.add(name)
                ns, body = parse_epoch_ns(m.group(2)), m.group(3)
                # REST replies belong to the run (contract.RUN_CONN_ID); a sync snapshot
                # is given to its connection when the capture's files are merged.
                if problem := value_problem(wire, body):
                    # A book reply is no snapshot then; the stream it checks is not marked.
                    bad(lineno, f"{problem} (in a book reply)", mark=False)
                    continue
                if symbol is not None:
                    records.append(_Record(ns, RUN_CONN_ID, wire, "rest", body, (symbol,)))
                else:
                    payload = contract.event_payload("http", url=m.group(1), body=body)
                    records.append(_Record(ns, RUN_CONN_ID, wire, "event", payload, None))
            else:
                bad(lineno, "not a cryptofeed raw log line")
        except ProtocolError as exc:
            raise ProtocolError(f"{path}:{lineno}: {exc}") from None
        except ValueError as exc:
            bad(lineno, str(exc))
    if len(venues) > 1:
        raise ProtocolError(f"{path}: mixes venues {sorted(venues)}; import one venue per file")
    if not venues:
        raise DatasetError(f"{path}: no cryptofeed records found")
    return venues.pop(), records


def _venue(name: str) -> Venue:
    contract.check_name("venue", name)
    if name not in VENUES:
        raise UsageError(f"--venue: unknown venue {name!r} (known: {', '.join(VENUES)})")
    return VENUES[name]


def _capture_groups(files: Sequence[Path]) -> list[list[Path]]:
    """The input files in runs: one file each, except a cryptofeed capture's REST log
    (``X.http.*``), which goes with the websocket logs of its capture (``X.ws.*``)
    given beside it, so that its replies can sync their connections' books."""
    prefix = {f: f.name.split(".")[0] for f in files}
    http = {prefix[f] for f in files if ".http." in f.name}
    groups: dict[str, list[Path]] = {}
    out: list[list[Path]] = []
    for f in files:
        if prefix[f] in http and (".http." in f.name or ".ws." in f.name):
            if prefix[f] not in groups:
                groups[prefix[f]] = []
                out.append(groups[prefix[f]])
            groups[prefix[f]].append(f)
        else:
            out.append([f])
    for group in out:
        group.sort(key=lambda f: (".http." in f.name, f.name))
    return out


def _merge_capture(parsed: Sequence[list[_Record]]) -> list[_Record]:
    """The records of one capture's files in receive order (each file's own order kept),
    with each sync snapshot given to its connection (docs/architecture.md section 2.6).

    A REST reply of a protocol that syncs books (:attr:`~tickrec.venues.base.Wire.syncs`)
    belongs to the latest connection of that protocol opened before it that carries
    its symbol; with none, it stays a check snapshot of the run.
    """
    records = list(heapq.merge(*parsed, key=lambda r: r.recv_ns))
    conns: dict[int, _Connection] = {}
    for r in records:
        if r.conn is not None:
            conns.setdefault(r.conn_id, r.conn)
    for r in records:
        wire = WIRES.get(r.protocol)
        if r.source != "rest" or wire is None or wire.syncs is None or not r.symbols:
            continue
        owners = [
            (c.opened_ns, cid, c)
            for cid, c in conns.items()
            if c.protocol == wire.syncs and c.opened_ns <= r.recv_ns and r.symbols[0] in c.symbols
        ]
        if owners:
            _, r.conn_id, r.conn = max(owners, key=lambda o: (o[0], o[1]))
    _resolve_targets(records)
    return records


def _skipped_payload(path: Path, lineno: int, why: str) -> str:
    """The ``skipped`` event of an input line left out of the import (docs/architecture.md)."""
    return contract.event_payload("skipped", file=path.name, line=lineno, why=why)


def _resolve_targets(records: Sequence[_Record]) -> None:
    """Send connection-wide rows to every symbol their connection carried.

    See docs/architecture.md section 2.1.

    A connection's symbols are known only once all its traffic is read (a v2
    connection names them in its subscribe message and its messages). Rows
    outside any connection (an HTTP reply that is not a book) go to every
    symbol of the file.
    """
    everyone = sorted(
        {s for r in records if r.symbols for s in r.symbols}
        | {s for r in records if r.conn is not None for s in r.conn.symbols}
    )
    for r in records:
        if r.symbols is None:
            r.symbols = tuple(sorted(r.conn.symbols)) if r.conn is not None else tuple(everyone)


def _write(
    root: Root,
    venue: str,
    run_id: str,
    records: Sequence[_Record],
    extra: dict[str, str],
    result: ImportResult,
) -> None:
    by_symbol: dict[str, list[Row]] = defaultdict(list)
    for seq, r in enumerate(records):
        row = Row(r.recv_ns, seq, run_id, r.conn_id, r.protocol, r.source, r.payload)
        header = header_of(r.protocol, r.payload) if r.source == "ws" else None
        if header is not None:
            row = row._replace(exch_ns=header.exch_ns, venue_seq=header.venue_seq)
        if r.sent_ns is not None:
            row = row._replace(sent_ns=r.sent_ns)
        for symbol in r.symbols or ():
            by_symbol[symbol].append(row)
    try:
        for symbol in sorted(by_symbol):
            rows = by_symbol[symbol]
            # A run never has two parts with one name: split by UTC date, in seq order.
            by_date: dict[str, list[Row]] = defaultdict(list)
            for row in rows:
                by_date[contract.date_of_ns(row.recv_ns)].append(row)
            for n, date in enumerate(sorted(by_date)):
                table = contract.rows_to_table(by_date[date])
                result.parts.append(
                    contract.write_part(root, venue, symbol, run_id, n, table, extra=extra)
                )
                result.rows += table.num_rows
    except BaseException:
        for part in result.parts:
            part.unlink(missing_ok=True)
        result.parts.clear()
        result.rows = 0
        raise


def _already_imported(root: Root, venue: str, run_id: str) -> bool:
    base = root / "raw" / f"venue={venue}"
    return base.is_dir() and any(base.glob(f"date=*/symbol=*/part-*-{run_id}-*.parquet"))


def _run_id(digest: str) -> str:
    return f"import-{digest[:20]}"


#: What parsing one input group gives: venue, records, extra footer metadata.
_Parsed = tuple[str, list[_Record], dict[str, str]]


def _import(
    paths: Iterable[str | os.PathLike[str]],
    root: RootLike,
    parse: Callable[[list[Path], ImportResult], _Parsed],
    on_file: Callable[[ImportResult], None] | None,
    progress: Progress | None = None,
    group: Callable[[Sequence[Path]], list[list[Path]]] | None = None,
) -> list[ImportResult]:
    """Import each group of files (*group*; by default each file alone) as one run named
    by its content hash, unless it is already in.

    Every path is checked before anything is imported, so a mistyped name
    fails the command at once rather than after the files before it.
    """
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise UsageError(f"{path}: not readable")
    groups = [[f] for f in files] if group is None else group(files)
    results = []
    for k, paths_k in enumerate(groups, 1):
        path = paths_k[0]
        names = " + ".join(p.name for p in paths_k)
        where = f"import {names} ({k}/{len(groups)})"
        if progress is not None:
            progress(f"{where}: reading")
        hashes = [_file_hash(p) for p in paths_k]
        digest = (
            hashes[0] if len(hashes) == 1 else hashlib.sha256(" ".join(hashes).encode()).hexdigest()
        )
        result = ImportResult(path, _run_id(digest), with_files=tuple(paths_k[1:]))
        venue, records, extra = parse(paths_k, result)
        if _already_imported(as_root(root), venue, result.run_id):
            result.already_imported = True
        else:
            if progress is not None:
                progress(f"{where}: writing {len(records):,} records")
            extra = {"source_sha256": digest, **extra}
            _write(as_root(root), venue, result.run_id, records, extra, result)
        if progress is not None:
            progress("")
        results.append(result)
        if on_file is not None:
            on_file(result)
    return results


def import_cryptofeed(
    paths: Iterable[str | os.PathLike[str]],
    root: RootLike,
    strict: bool = False,
    on_file: Callable[[ImportResult], None] | None = None,
    progress: Progress | None = None,
    venue: str | None = None,
    protocol: str | None = None,
) -> list[ImportResult]:
    """Import cryptofeed raw logs; one run per file, or per capture (a websocket log with
    its REST log). See the module docstring.

    *venue* (and *protocol*, a short name such as ``spot``) are for captures taken
    through a proxy or mirror, whose URLs do not name the venue.
    """
    forced = None if venue is None else _venue(venue)
    wire = None
    if protocol is not None:
        if forced is None:
            raise UsageError("--protocol needs --venue")
        wire = forced.wire(protocol)
        if wire is None or wire not in forced.streams:
            known = ", ".join(w.short for w in forced.streams)
            raise UsageError(
                f"--protocol: unknown protocol {protocol!r} of {forced.name} (known: {known})"
            )

    def parse(paths: list[Path], result: ImportResult) -> _Parsed:
        parsed: list[list[_Record]] = []
        venues: set[str] = set()
        conn_id = 0
        for path in paths:
            name, records = _parse_cryptofeed(
                path, _read_lines(path), strict, result.skipped, conn_id, forced, wire
            )
            venues.add(name)
            conn_id = max((r.conn_id for r in records), default=conn_id)
            parsed.append(records)
        if len(venues) > 1:
            names = " + ".join(p.name for p in paths)
            raise ProtocolError(f"{names}: mixes venues {sorted(venues)}; one venue per capture")
        return venues.pop(), _merge_capture(parsed), {"source_format": "cryptofeed"}

    return _import(paths, root, parse, on_file, progress, _capture_groups)


def import_lines(
    paths: Iterable[str | os.PathLike[str]],
    root: RootLike,
    venue: str,
    protocol: str | None = None,
    symbol: str | None = None,
    start_ns: int | None = None,
    step_ns: int = 1_000_000,
    strict: bool = False,
    on_file: Callable[[ImportResult], None] | None = None,
    progress: Progress | None = None,
) -> list[ImportResult]:
    """Import files of one message per line, optionally prefixed by a receive time.

    *protocol* is one of the venue's websocket protocols by its short name
    (``v1``, ``v2`` or ``ws`` on Gemini, ``spot`` on Binance; default: the
    venue's first). A protocol whose messages do not name their symbol
    (Gemini v1) needs *symbol*. A line that is a REST snapshot given in the
    stream (Tardis's generated Binance ``depthSnapshot``; header kind
    ``snapshot``) is stored as the sync snapshot of the file's connection, a
    ``rest`` row (docs/architecture.md section 2.6). Lines without a timestamp
    get synthetic, increasing receive times from *start_ns* in steps of
    *step_ns*, and the parts' metadata says so (``synthetic_recv_ts``).
    """
    streams = _venue(venue).streams
    found = streams[0] if protocol is None else VENUES[venue].wire(protocol)
    if found is None or found not in streams:
        known = ", ".join(w.short for w in streams)
        raise UsageError(f"--protocol: unknown protocol {protocol!r} of {venue} (known: {known})")
    if not found.names_symbol and not symbol:
        raise UsageError(
            f"--symbol is required for {found.short}: its messages do not name their symbol"
        )
    wire = found.name

    def parse(paths: list[Path], result: ImportResult) -> _Parsed:
        [path] = paths
        records, synthetic = _parse_lines(
            path, _read_lines(path), wire, symbol, start_ns, step_ns, strict, result.skipped
        )
        extra = {"source_format": "lines", "synthetic_recv_ts": str(synthetic).lower()}
        return venue, records, extra

    return _import(paths, root, parse, on_file, progress)


#: The REST protocol whose sync snapshots a websocket protocol's stream takes.
_SNAPSHOT_OF = {w.syncs: w.name for w in WIRES.values() if w.syncs is not None}


def _parse_lines(
    path: Path,
    lines: Sequence[str],
    protocol: str,
    symbol: str | None,
    start_ns: int | None,
    step_ns: int,
    strict: bool,
    skipped: list[str],
) -> tuple[list[_Record], bool]:
    # (time or None, payload, None) per message; (time or None, None, why) per skipped line
    parsed: list[tuple[int | None, str | None, str | None]] = []
    for lineno, line in enumerate(lines, 1):
        text = line.rstrip("\r")
        if not text.strip():
            continue
        stamp: int | None = None
        problem: str | None = None
        if not text.startswith(("{", "[")):
            head, _, text = text.partition(" ")
            try:
                stamp = parse_time_ns(head)
            except ValueError as exc:
                problem = str(exc)
        header = header_of(protocol, text)
        values = _SNAPSHOT_OF.get(protocol, protocol) if header.kind == "snapshot" else protocol
        problem = problem or header.problem or value_problem(values, text)
        if problem is not None:
            message = f"{path}:{lineno}: {problem}"
            if strict:
                raise DatasetError(message)
            skipped.append(message)
            parsed.append((stamp, None, _skipped_payload(path, lineno, problem)))
            continue
        parsed.append((stamp, text, None))
    if not any(payload is not None for _, payload, _ in parsed):
        raise DatasetError(f"{path}: no messages found")
    stamped = [s is not None for s, payload, _ in parsed if payload is not None]
    if any(stamped) and not all(stamped):
        raise DatasetError(f"{path}: some lines have a timestamp and some do not")
    synthetic = not stamped[0]
    if synthetic and start_ns is None:
        raise UsageError(f"{path}: lines have no timestamps; give --start (ISO-8601 UTC)")
    conn_symbols = {symbol.upper()} if symbol else set()
    records: list[_Record] = []
    # Synthetic times count messages only. A skipped line whose own time could not be
    # read takes the time of the message before it (or of the first message).
    last_ns = next(s for s, payload, _ in parsed if payload is not None)
    k = 0
    for stamp, payload, skip in parsed:
        if synthetic:
            ns = (start_ns or 0) + k * step_ns
        else:
            ns = stamp if stamp is not None else last_ns or 0
        last_ns = ns
        if payload is None:
            # The line may have changed the book: the replayer marks it invalid there.
            records.append(_Record(ns, 1, protocol, "event", skip or "", None))
            continue
        k += 1
        header = header_of(protocol, payload)
        own = header.symbol
        if own is not None:
            conn_symbols.add(own.upper())
        targets = (own.upper(),) if own is not None else None
        if symbol and targets and targets != (symbol.upper(),):
            continue  # --symbol keeps only that symbol of a multi-symbol file
        if header.kind == "snapshot" and protocol in _SNAPSHOT_OF and targets:
            records.append(_Record(ns, 1, _SNAPSHOT_OF[protocol], "rest", payload, targets))
            continue
        records.append(_Record(ns, 1, protocol, "ws", payload, targets))
    everyone = tuple(sorted({symbol.upper()} if symbol else conn_symbols))
    for r in records:
        if r.symbols is None:
            r.symbols = everyone
    return records, synthetic
