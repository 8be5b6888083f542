"""The dataset contract: the one interface between recorder, replayer and outside tools.

Layout (Hive-style partitions, readable as-is by pyarrow.dataset, DuckDB, Polars)::

    {root}/raw/venue={venue}/date={YYYY-MM-DD}/symbol={SYMBOL}/part-{first_recv_ns}-{run_id}-{n}.parquet

Rules kept here, so that no caller can break them:

- names (venue, symbol, run id) are validated before they become path parts,
  so no input can write outside the dataset root;
- a part file appears only when complete (temporary name, fsync, rename, fsync
  of the directory) and is never rewritten;
- every data page carries a CRC32 (Parquet page checksums), checked on every
  read, so a flipped bit in a stored part is an error, never a changed value;
- every part carries footer metadata (:data:`META_KEYS`) so listings read
  footers only;
- readers order parts by the contract (runs by their first ``recv_ts``, then
  ``seq``), never by the order a filesystem lists them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tickrec import __version__
from tickrec.durable import make_dirs, write_atomic
from tickrec.errors import CorruptFileError, DatasetError, NotFoundError, UsageError
from tickrec.store import Kept, Root, RootLike, StorePath, Version, as_root, listing, source

__all__ = [
    "EVENTS",
    "FORMAT_VERSION",
    "META_KEYS",
    "RUN_CONN_ID",
    "SCHEMA",
    "SOURCES",
    "PartFile",
    "Partition",
    "Row",
    "check_date",
    "check_name",
    "contract_order",
    "dataset_root",
    "date_of_ns",
    "event_payload",
    "footer_meta",
    "iter_parts",
    "list_partitions",
    "list_parts",
    "missing_partition",
    "parse_part_name",
    "part_name",
    "partition_dir",
    "partition_parts",
    "read_footer",
    "read_footer_meta",
    "read_partition",
    "read_parts",
    "replaced",
    "replaced_in",
    "resolve_root",
    "rows_to_table",
    "scan_parts",
    "write_part",
]

FORMAT_VERSION = "1"

_TS = pa.timestamp("ns", tz="UTC")
_DICT = pa.dictionary(pa.int32(), pa.string())

#: The Arrow schema of a raw part file (docs/architecture.md section 2.2).
SCHEMA = pa.schema(
    [
        pa.field("recv_ts", _TS, nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("run_id", _DICT, nullable=False),
        pa.field("conn_id", pa.int32(), nullable=False),
        pa.field("protocol", _DICT, nullable=False),
        pa.field("source", _DICT, nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("exch_ts", _TS, nullable=True),
        pa.field("venue_seq", pa.int64(), nullable=True),
        pa.field("sent_ts", _TS, nullable=True),
    ]
)

#: Allowed values of the ``source`` column.
SOURCES = ("ws", "ws_sent", "rest", "event")

#: Kinds of recorder event rows (``source = "event"``). The payload is a JSON
#: object ``{"event": kind, ...details}`` made by :func:`event_payload`:
#:
#: ==================  ======================================================
#: ``run_start``       a recorder run began (run settings)
#: ``reconnect``       a connection attempt is about to be made (attempt, delay)
#: ``connect``         a websocket is open (``url``)
#: ``disconnect``      a websocket ended: ``code``/``reason`` of the close
#:                     frame, or ``code`` null and ``why`` for an abort,
#:                     error or stale connection
#: ``error``           a connection could not be made or failed (``error``)
#: ``gap``             v1 ``socket_sequence`` broke (``expected``/``got``); a
#:                     reconnect follows (docs/venues/gemini.md section 1)
#: ``stale``           nothing arrived for ``silent_s`` seconds; a reconnect
#:                     follows
#: ``malformed``       the message with ``seq`` could not be read
#:                     (``problem``); it is stored raw all the same
#: ``rest_error``      a REST snapshot request failed (``status``/``error``)
#: ``http``            an imported HTTP reply that is not a book snapshot
#: ``skipped``         an input line the importer left out (``file``, ``line``,
#:                     ``why``: a bad value or an unreadable line); the
#:                     replayer treats it as a bad message of its connection
#: ``disk_error``      journal writes failed from ``since_ns`` to ``resumed_ns``;
#:                     the ``records_held`` meanwhile were written late, with
#:                     their receive times (``lost`` 0)
#: ``journal_loss``    recovery found a damaged journal tail (``bytes_lost``),
#:                     or the recorder dropped ``lost`` records it held while
#:                     the disk was full (``first_seq``..``last_seq``);
#:                     ``start_ns``..``end_ns`` is the span that may be missing
#: ``shutdown``        the run is stopping (``why``)
#: ==================  ======================================================
#:
#: Run-level events (``run_start``, ``shutdown``, ``disk_error``,
#: ``journal_loss``) and REST rows carry ``conn_id`` :data:`RUN_CONN_ID`;
#: websocket connections are numbered from 1.
EVENTS = (
    "run_start",
    "reconnect",
    "connect",
    "disconnect",
    "error",
    "gap",
    "stale",
    "malformed",
    "rest_error",
    "http",
    "skipped",
    "disk_error",
    "journal_loss",
    "shutdown",
)

#: ``conn_id`` of rows that belong to the run rather than to one websocket.
RUN_CONN_ID = 0

#: Footer metadata keys. Values are UTF-8 strings; integers in decimal.
META_KEYS = {
    "format_version": "tickrec.format_version",
    "tickrec_version": "tickrec.version",
    "venue": "tickrec.venue",
    "symbol": "tickrec.symbol",
    "run_id": "tickrec.run_id",
    "first_seq": "tickrec.first_seq",
    "last_seq": "tickrec.last_seq",
    "first_recv_ns": "tickrec.first_recv_ns",
    "last_recv_ns": "tickrec.last_recv_ns",
    "rows": "tickrec.rows",
}
_EXTRA_PREFIX = "tickrec.extra."

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Footer key (under the ``extra.`` prefix) of a merged part: the JSON list of the part
#: names it replaces (:mod:`tickrec.compact`).
REPLACES = "replaces"
#: The run id prefix of merged parts.
MERGED_RUN = "compact."
_PART_RE = re.compile(r"^part-(\d+)-([A-Za-z0-9._-]+)-(\d+)\.parquet$")
_NS_PER_DAY = 86_400 * 1_000_000_000


class Row(NamedTuple):
    """One row of a raw part file, with times as integer nanoseconds since the epoch (UTC)."""

    recv_ns: int
    seq: int
    run_id: str
    conn_id: int
    protocol: str
    source: str
    payload: str
    exch_ns: int | None = None
    venue_seq: int | None = None
    sent_ns: int | None = None


def event_payload(kind: str, **details: object) -> str:
    """The JSON payload of an event row: ``{"event": kind, ...}`` with sorted keys."""
    if kind not in EVENTS:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENTS}")
    return json.dumps({"event": kind, **details}, sort_keys=True, separators=(",", ":"))


def check_name(kind: str, value: str) -> str:
    """Return *value* if it is safe as a path part, else raise :class:`UsageError`.

    Allowed: letters, digits, ``-``, ``_`` and ``.``; not ``.`` or ``..`` or only dots.
    """
    if not isinstance(value, str) or not _NAME_RE.match(value) or set(value) == {"."}:
        raise UsageError(
            f"invalid {kind} {value!r}: use letters, digits, '-', '_' or '.' "
            "(no path separators, not '.' or '..')"
        )
    return value


def dataset_root(data: RootLike | None = None) -> Root:
    """The dataset root: *data* if given, else ``$TICKREC_DATA``, else ``data``.

    A local directory is a :class:`~pathlib.Path`; an object-store URI such as
    ``s3://bucket/prefix`` is a :class:`~tickrec.store.StorePath`.
    """
    if data is None or str(data) == "":
        data = os.environ.get("TICKREC_DATA") or "data"
    return as_root(data)


def resolve_root(data: RootLike | None = None) -> Path:
    """The dataset root as :func:`dataset_root` finds it, for work that needs a local
    directory (the recorder's journal, recovery, status); an object-store root is
    refused with :class:`UsageError`."""
    root = dataset_root(data)
    if not isinstance(root, Path):
        raise UsageError(f"{root}: this command works on a local dataset directory only")
    return root


def date_of_ns(ns: int) -> str:
    """UTC date (``YYYY-MM-DD``) of a time in nanoseconds since the epoch."""
    days = ns // _NS_PER_DAY
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat()


def check_date(date: str) -> str:
    """Return *date* if it is a ``YYYY-MM-DD`` date, else raise :class:`UsageError`."""
    if not isinstance(date, str) or not _DATE_RE.fullmatch(date):
        raise UsageError(f"invalid date {date!r}: expected YYYY-MM-DD")
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        raise UsageError(f"invalid date {date!r}: no such day") from None
    return date


def partition_dir(root: RootLike, venue: str, date: str, symbol: str) -> Root:
    """Directory of one (venue, date, symbol) partition, after validating every part."""
    check_name("venue", venue)
    check_name("symbol", symbol)
    check_date(date)
    return as_root(root) / "raw" / f"venue={venue}" / f"date={date}" / f"symbol={symbol}"


def part_name(first_recv_ns: int, run_id: str, n: int) -> str:
    """File name of a part: ``part-{first_recv_ns}-{run_id}-{n}.parquet``."""
    check_name("run id", run_id)
    if first_recv_ns < 0 or n < 0:
        raise UsageError("first_recv_ns and n must be non-negative")
    return f"part-{first_recv_ns}-{run_id}-{n}.parquet"


def parse_part_name(name: str) -> tuple[int, str, int] | None:
    """``(first_recv_ns, run_id, n)`` of a part file name, or None if it is not one."""
    m = _PART_RE.match(name)
    if not m:
        return None
    return int(m.group(1)), m.group(2), int(m.group(3))


def rows_to_table(rows: Sequence[Row]) -> pa.Table:
    """Build a contract table from rows (which must already be in ``seq`` order)."""
    cols: list[Sequence[object]] = (
        list(zip(*rows, strict=True)) if rows else [[] for _ in Row._fields]
    )
    arrays = [
        pa.array(cols[0], pa.int64()).cast(_TS),
        pa.array(cols[1], pa.int64()),
        pa.array(cols[2], pa.string()).dictionary_encode(),
        pa.array(cols[3], pa.int32()),
        pa.array(cols[4], pa.string()).dictionary_encode(),
        pa.array(cols[5], pa.string()).dictionary_encode(),
        pa.array(cols[6], pa.string()),
        pa.array(cols[7], pa.int64()).cast(_TS),
        pa.array(cols[8], pa.int64()),
        pa.array(cols[9], pa.int64()).cast(_TS),
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


@dataclass(frozen=True, order=True)
class Partition:
    """One (venue, date, symbol) directory of the raw tree."""

    venue: str
    date: str
    symbol: str


@dataclass(frozen=True)
class PartFile:
    """A part file and what its footer says about it."""

    path: Root
    venue: str
    date: str
    symbol: str
    run_id: str
    n: int
    first_seq: int
    last_seq: int
    first_recv_ns: int
    last_recv_ns: int
    rows: int
    extra: Mapping[str, str]


def footer_meta(
    venue: str,
    symbol: str,
    run_id: str,
    seq: tuple[int, int],
    recv_ns: tuple[int, int],
    rows: int,
    extra: Mapping[str, str] | None,
) -> dict[bytes, bytes]:
    """The key-value metadata of a part's footer: *seq* and *recv_ns* are its first and
    last values (of a merged part, the least and greatest)."""
    meta = {
        META_KEYS["format_version"]: FORMAT_VERSION,
        META_KEYS["tickrec_version"]: __version__,
        META_KEYS["venue"]: venue,
        META_KEYS["symbol"]: symbol,
        META_KEYS["run_id"]: run_id,
        META_KEYS["first_seq"]: str(seq[0]),
        META_KEYS["last_seq"]: str(seq[1]),
        META_KEYS["first_recv_ns"]: str(recv_ns[0]),
        META_KEYS["last_recv_ns"]: str(recv_ns[1]),
        META_KEYS["rows"]: str(rows),
    }
    for key, value in (extra or {}).items():
        meta[_EXTRA_PREFIX + check_name("metadata key", key)] = str(value)
    return {k.encode(): v.encode() for k, v in meta.items()}


def _validate_table(table: pa.Table, date: str) -> None:
    if not table.schema.equals(SCHEMA):
        raise DatasetError(f"table schema does not match the contract:\n{table.schema}")
    if table.num_rows == 0:
        raise DatasetError("refusing to write an empty part")
    seq = table.column("seq")
    if table.num_rows > 1 and not pc.all(pc.greater(seq[1:], seq[:-1])).as_py():
        raise DatasetError("rows must be in strictly increasing seq order")
    recv = table.column("recv_ts").cast(pa.int64())
    lo, hi = pc.min(recv).as_py(), pc.max(recv).as_py()
    if date_of_ns(lo) != date or date_of_ns(hi) != date:
        raise DatasetError(
            f"rows span {date_of_ns(lo)}..{date_of_ns(hi)} but the partition date is {date}"
        )
    sources = set(table.column("source").combine_chunks().dictionary.to_pylist())
    if not sources <= set(SOURCES):
        raise DatasetError(f"unknown source values {sorted(sources - set(SOURCES))}")


def write_part(
    root: RootLike,
    venue: str,
    symbol: str,
    run_id: str,
    n: int,
    table: pa.Table,
    extra: Mapping[str, str] | None = None,
) -> Root:
    """Atomically write *table* as part *n* of *run_id* and return its path.

    The date partition comes from the rows' ``recv_ts`` (all must fall on one
    UTC date). The file is written under a hidden temporary name, fsynced,
    renamed into place and the directory fsynced, so a reader never sees a
    partial file. An existing part is never overwritten.
    """
    if table.num_rows == 0:
        raise DatasetError("refusing to write an empty part")
    first_ns = table.column("recv_ts").cast(pa.int64())[0].as_py()
    date = date_of_ns(first_ns)
    directory = partition_dir(root, venue, date, symbol)
    name = part_name(first_ns, run_id, n)
    _validate_table(table, date)
    make_dirs(directory)
    final = directory / name
    seq = table.column("seq")
    recv = table.column("recv_ts").cast(pa.int64())
    meta = footer_meta(
        venue,
        symbol,
        run_id,
        (seq[0].as_py(), seq[-1].as_py()),
        (recv[0].as_py(), recv[-1].as_py()),
        table.num_rows,
        extra,
    )
    table = table.replace_schema_metadata(meta)
    try:
        write_atomic(
            final,
            lambda fh: pq.write_table(table, fh, compression="zstd", write_page_checksum=True),
            replace=False,
        )
    except FileExistsError:
        raise DatasetError(f"{final}: part already exists; parts are never rewritten") from None
    return final


def read_footer(path: RootLike) -> PartFile:
    """Read a part's footer only, and check it against its path."""
    return read_footer_meta(path)[0]


#: Footers read in this process: a part is never rewritten, so a replay that lists a
#: partition again (a range, the day before) reads none twice.
_FOOTERS: Kept[tuple[PartFile, pq.FileMetaData]] = Kept(1 << 15)


def _footer_key(path: Root) -> Version | None:
    if isinstance(path, StorePath):
        version = path.version()
        return None if version is None else (str(path), *version)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(path), st.st_size, st.st_mtime_ns


def read_footer_meta(path: RootLike) -> tuple[PartFile, pq.FileMetaData]:
    """A part's tickrec footer (:func:`read_footer`) and its Parquet file metadata,
    from one read of the footer (remembered for the file as it is now)."""
    path = as_root(path)
    key = _footer_key(path)
    if key is None:
        return _read_footer_meta(path)
    return _FOOTERS.get(key, lambda: _read_footer_meta(path))


def _read_footer_meta(path: Root) -> tuple[PartFile, pq.FileMetaData]:
    try:
        file_meta = pq.read_metadata(source(path))
    except (OSError, pa.ArrowException) as exc:
        raise CorruptFileError(f"{path}: not a valid Parquet file ({exc})", path) from None
    raw = file_meta.metadata or {}
    try:
        meta = {k.decode(): v.decode() for k, v in raw.items()}
    except UnicodeDecodeError as exc:
        raise CorruptFileError(
            f"{path}: missing or bad tickrec footer metadata ({exc})", path
        ) from None
    parsed = parse_part_name(path.name)
    try:
        fields = {name: meta[key] for name, key in META_KEYS.items()}
        part = PartFile(
            path=path,
            venue=fields["venue"],
            date=date_of_ns(int(fields["first_recv_ns"])),
            symbol=fields["symbol"],
            run_id=fields["run_id"],
            n=parsed[2] if parsed else -1,
            first_seq=int(fields["first_seq"]),
            last_seq=int(fields["last_seq"]),
            first_recv_ns=int(fields["first_recv_ns"]),
            last_recv_ns=int(fields["last_recv_ns"]),
            rows=int(fields["rows"]),
            extra={
                k[len(_EXTRA_PREFIX) :]: v for k, v in meta.items() if k.startswith(_EXTRA_PREFIX)
            },
        )
    except (KeyError, ValueError, OverflowError) as exc:
        raise CorruptFileError(
            f"{path}: missing or bad tickrec footer metadata ({exc})", path
        ) from None
    return part, file_meta


def _hive_value(dirname: str, key: str) -> str | None:
    prefix = key + "="
    return dirname[len(prefix) :] if dirname.startswith(prefix) else None


def list_partitions(
    root: RootLike,
    venue: str | None = None,
    date: str | None = None,
    symbol: str | None = None,
) -> list[Partition]:
    """Every raw partition under *root* matching the filters, sorted."""
    found: list[Partition] = []
    raw = as_root(root) / "raw"
    if not raw.is_dir():
        return found
    for vdir in raw.iterdir():
        v = _hive_value(vdir.name, "venue")
        if v is None or not vdir.is_dir() or (venue is not None and v != venue):
            continue
        for ddir in vdir.iterdir():
            d = _hive_value(ddir.name, "date")
            if d is None or not ddir.is_dir() or (date is not None and d != date):
                continue
            for sdir in ddir.iterdir():
                s = _hive_value(sdir.name, "symbol")
                if s is None or not sdir.is_dir() or (symbol is not None and s != symbol):
                    continue
                found.append(Partition(v, d, s))
    return sorted(found)


def scan_parts(
    root: RootLike, partition: Partition
) -> tuple[list[PartFile], list[CorruptFileError]]:
    """The readable part files of one partition in contract order, and the damaged ones.

    A part whose footer cannot be read is not listed; its error (naming the
    file) is returned instead, so one damaged file does not hide the others.
    """
    directory = partition_dir(root, partition.venue, partition.date, partition.symbol)
    if not directory.is_dir():
        return [], []
    parts, damaged = [], []
    for p in listing(directory):
        if p.is_file() and parse_part_name(p.name) is not None:
            try:
                parts.append(read_footer(p))
            except CorruptFileError as exc:
                damaged.append(exc)
    gone = replaced(parts)
    parts = [p for p in parts if p.path.name not in gone]
    damaged = [e for e in damaged if e.path is None or e.path.name not in gone]
    return contract_order(parts), damaged


def replaced_in(directory: Root) -> set[str]:
    """:func:`replaced` of the merged parts in *directory* (only their footers are read)."""
    footers = []
    for p in listing(directory):
        named = parse_part_name(p.name)
        if named is not None and named[1].startswith(MERGED_RUN):
            try:
                footers.append(read_footer(p))
            except CorruptFileError:
                continue  # a damaged merged part replaces nothing
    return replaced(footers)


def replaced(parts: Iterable[PartFile]) -> set[str]:
    """The names of the parts that merged parts among *parts* replace
    (:mod:`tickrec.compact`): a reader that finds both after a crash reads the merged
    part only."""
    gone: set[str] = set()
    for p in parts:
        text = p.extra.get(REPLACES)
        if text is not None:
            gone.update(json.loads(text))
    return gone


def list_parts(root: RootLike, partition: Partition) -> list[PartFile]:
    """The part files of one partition, from their footers, in contract order.

    Contract order: runs by their first ``recv_ts`` (then run id), and within a
    run by ``seq``. Hidden and temporary files are ignored. Raises
    :class:`CorruptFileError` for the first part whose footer cannot be read.
    """
    parts, damaged = scan_parts(root, partition)
    if damaged:
        raise damaged[0]
    return parts


def contract_order(parts: list[PartFile]) -> list[PartFile]:
    """*parts* in contract order: runs by their first ``recv_ts`` (then run id), and
    within a run by ``seq``."""
    run_start: dict[str, int] = {}
    for p in parts:
        run_start[p.run_id] = min(run_start.get(p.run_id, p.first_recv_ns), p.first_recv_ns)
    return sorted(parts, key=lambda p: (run_start[p.run_id], p.run_id, p.first_seq))


def _runs_overlap(parts: Sequence[PartFile]) -> bool:
    spans: dict[str, tuple[int, int]] = {}
    for p in parts:
        lo, hi = spans.get(p.run_id, (p.first_recv_ns, p.last_recv_ns))
        spans[p.run_id] = (min(lo, p.first_recv_ns), max(hi, p.last_recv_ns))
    reach = None
    for lo, hi in sorted(spans.values()):
        if reach is not None and lo < reach:
            return True
        reach = hi if reach is None else max(reach, hi)
    return False


def read_parts(parts: Sequence[PartFile], columns: Iterable[str] | None = None) -> pa.Table:
    """Load parts (already in contract order) into one table with the contract schema.

    If runs overlap in time, rows are merged by ``(recv_ts, run_id, seq)``,
    which is still a pure function of the files; the rows come in that order
    whichever *columns* are asked for (the three are read for the merge).
    """
    cols = list(columns) if columns is not None else None
    keys = ["recv_ts", "run_id", "seq"]
    if cols is not None and _runs_overlap(parts) and not set(keys) <= set(cols):
        merged = read_parts(parts, cols + [k for k in keys if k not in cols])
        return merged.select(cols)
    tables = []
    for p in parts:
        try:
            t = pq.read_table(source(p.path), columns=cols, page_checksum_verification=True)
        except (OSError, pa.ArrowException) as exc:
            raise CorruptFileError(f"{p.path}: not a valid Parquet file ({exc})", p.path) from None
        tables.append(t.replace_schema_metadata(None))
    schema = SCHEMA if cols is None else pa.schema([SCHEMA.field(c) for c in cols])
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables, promote_options="permissive").cast(schema)
    if _runs_overlap(parts) and {"recv_ts", "run_id", "seq"} <= set(table.column_names):
        order = pc.sort_indices(
            table.select(["recv_ts", "seq"]).append_column(
                "run", table.column("run_id").cast(pa.string())
            ),
            sort_keys=[("recv_ts", "ascending"), ("run", "ascending"), ("seq", "ascending")],
        )
        table = table.take(order)
    return table


def iter_parts(
    parts: Sequence[PartFile], columns: Iterable[str] | None = None, batch_rows: int = 1 << 18
) -> Iterator[pa.RecordBatch]:
    """The rows of :func:`read_parts`, as record batches of at most *batch_rows*, in the same order.

    Parts are read one batch at a time, so a partition never has to fit in
    memory at once, except when runs overlap and rows must be merged (then
    the whole table is read first).
    """
    cols = list(columns) if columns is not None else None
    if _runs_overlap(parts):
        yield from read_parts(parts, cols).to_batches(batch_rows)
        return
    schema = SCHEMA if cols is None else pa.schema([SCHEMA.field(c) for c in cols])
    for p in parts:
        try:
            reader = pq.ParquetFile(source(p.path), page_checksum_verification=True)
            batches = reader.iter_batches(batch_size=batch_rows, columns=cols)
            for batch in batches:
                yield batch.replace_schema_metadata(None).cast(schema)
        except (OSError, pa.ArrowException) as exc:
            raise CorruptFileError(f"{p.path}: not a valid Parquet file ({exc})", p.path) from None


def partition_parts(root: RootLike, venue: str, date: str, symbol: str) -> list[PartFile]:
    """The part files of one partition in contract order (:func:`list_parts`).

    Raises :class:`NotFoundError`, listing what exists, when there is no such partition.
    """
    partition = Partition(venue, check_date(date), symbol)
    parts = list_parts(root, partition)
    if not parts:
        raise missing_partition(root, venue, date, symbol)
    return parts


def missing_partition(root: RootLike, venue: str, date: str, symbol: str) -> NotFoundError:
    """The error for a partition that has no parts, listing what exists instead."""
    have = list_partitions(root, venue=venue)
    dates = sorted({p.date for p in have})
    symbols = sorted({p.symbol for p in have if p.date == date})
    if symbol in symbols:  # its directory is there, with no part in it
        hint = f"{partition_dir(root, venue, date, symbol)} holds no part files"
    elif symbols:
        hint = f"symbols on {date}: {', '.join(symbols)}"
    else:
        hint = f"dates for {venue}: {', '.join(dates) or 'none'}"
    return NotFoundError(f"no data for {venue} {symbol} on {date} under {root} ({hint})")


def read_partition(
    root: RootLike,
    venue: str,
    date: str,
    symbol: str,
    columns: Iterable[str] | None = None,
) -> pa.Table:
    """All rows of one partition in contract order.

    Raises :class:`NotFoundError`, listing what exists, when there is no such partition.
    """
    return read_parts(partition_parts(root, venue, date, symbol), columns)
