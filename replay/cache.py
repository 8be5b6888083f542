"""The normalized cache: decoded partitions on disk, so a second replay skips JSON decoding.

Layout (docs/architecture.md section 2.1)::

    {root}/normalized/venue={venue}/date={date}/symbol={symbol}/
        ops.parquet      book operations (replay.events.BookOps), ticks and units
        trades.parquet   trades (replay.events.Trades)
        msgs.parquet     receive time and connection of every received message
        rest.parquet     REST book levels, one row per level
        manifest.json    the key, scales, counts, markers, sequence breaks,
                         REST headers, end-of-day checkpoints and the bad
                         parts left out; written last
        ends.json        the end-of-day checkpoints of the partition replayed
                         alone (what the next date carries over midnight),
                         and its bad parts

The cache is derived data, never a second source of truth. An entry is used
only if its manifest's key equals the key of the raw files as they are now:
a hash of every part's name, size, modification time and footer (run id,
first and last ``seq`` and ``recv_ts``, rows), of the cache format, and of
the decoder (:func:`decoder_version`): the source of every project module
that decoding imports (found from the imports themselves,
:mod:`replay.sources`) and each protocol's ``DECODER_VERSION``. A changed
file, an added part, an edited decoder or any module it uses, or a raised
version all rebuild it. A partition decoded with a book carried over
midnight has the carried checkpoints in its key as well. Deleting it
changes no output.

Carrying (docs/architecture.md section 2.5): the previous date's
checkpoints are those of that date replayed alone, read from its
``ends.json`` when current; else they are computed from its entry or its
raw files once and written there, so carrying costs a small read.

Bad parts (:mod:`replay.quarantine`). An entry built with ``skip_bad``
remembers the parts it left out, and a replay without ``skip_bad`` refuses
it as it would refuse the raw files. A current entry is used without
reading the raw pages again, so damage that changes neither a part's size
nor its modification time is found by ``tickrec verify`` or a replay with
``cache=False``, not here. Every file of an entry carries Parquet page
checksums, verified when it is read.

Every file is written under a temporary name, fsynced and renamed into
place (as :func:`tickrec.contract.write_part` does); the manifest goes
first out and last in, so a torn rebuild leaves no usable entry. An entry
that cannot be read for any reason is logged, ignored and rebuilt; a cache
that cannot be written is logged and skipped. Neither is an error.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from replay import quarantine, sources
from replay.columns import to_numpy
from replay.decode import PartitionDecoder, connection_rows
from replay.events import BadFile, BookOps, Checkpoint, Decoded, Marker, RestBook, SeqBreak, Trades
from replay.overlap import decode_overlapping
from replay.streams import DECODERS, decoder_versions
from tickrec import contract
from tickrec.contract import PartFile, Partition
from tickrec.durable import make_dirs, write_atomic
from tickrec.errors import CorruptFileError
from tickrec.progress import Progress, RowMeter
from tickrec.store import Root, RootLike, StorePath, as_root, cache_home

__all__ = [
    "CACHE_DIR",
    "DECODER_MODULES",
    "cache_dir",
    "cache_root",
    "decode_partition",
    "decode_parts",
    "decoder_version",
    "key_of",
    "load",
    "store",
]

log = logging.getLogger(__name__)

CACHE_DIR = "normalized"
#: Bumped whenever the stored layout changes.
FORMAT = "4"
_MANIFEST = "manifest.json"
_ENDS = "ends.json"
_NS_PER_DAY = 86_400 * 1_000_000_000
_TABLES = ("ops", "trades", "msgs", "rest")
# lz4 reads back in about 60% of the time zstd takes, for files about 1.5 times
# the size (a 10 M-change day: 0.43 s and 204 MiB against 0.70 s and 136 MiB).
_COMPRESSION = "lz4"
# Columns written as deltas: times and counters that mostly grow, whose deltas
# pack into a few bits. With no dictionaries, the 10 M-change day's cache is
# written in about half the time (1.15 s against 2.1 s), is 30% smaller and
# reads back faster.
_DELTAS = {
    "ops": ("ts", "grp", "exch"),
    "trades": ("ts", "grp", "exch", "tid"),
    "msgs": ("ts", "conn"),
    "rest": (),
}
#: Where decoding starts: with every project module these import, their code decides
#: what a partition decodes to (this module reads the raw parts and writes the entries;
#: the venues' decoders are loaded by name, so they are listed too).
DECODER_MODULES = ("replay.cache", "replay.decode", *sorted(set(DECODERS.values())))


def cache_root(root: RootLike) -> Path:
    """Where the normalized cache of the dataset under *root* lives, always on local disk:
    ``$TICKREC_CACHE`` when set (``tickrec replay --cache DIR``), else ``{root}/normalized``
    for a local root, else a directory under ``~/.cache/tickrec`` for an object-store root
    (:func:`tickrec.store.cache_home`)."""
    chosen = os.environ.get("TICKREC_CACHE")
    if chosen:
        return Path(chosen)
    found = as_root(root)
    return cache_home(found) / CACHE_DIR if isinstance(found, StorePath) else found / CACHE_DIR


def cache_dir(root: RootLike, venue: str, date: str, symbol: str) -> Path:
    """The cache entry directory of one partition."""
    return cache_root(root) / f"venue={venue}" / f"date={date}" / f"symbol={symbol}"


def decoder_version() -> str:
    """The decoder's part of the key: its sources and the protocols' decoder versions."""
    text = json.dumps(
        {
            "sources": sources.digest(sources.closure(DECODER_MODULES)),
            "versions": decoder_versions(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


# Once per process: the sources are read once, not for every partition.
_decoder_version = functools.cache(decoder_version)


def key_of(parts: Sequence[PartFile], unreadable: Sequence[Root] = ()) -> str:
    """The key of a partition's raw files as they are now (see the module docstring);
    *unreadable* are its parts whose footer cannot be read."""
    files: list[list[object]] = []
    for p in parts:
        st = p.path.stat()
        files.append(
            [
                p.path.name,
                st.st_size,
                st.st_mtime_ns,
                p.run_id,
                p.first_seq,
                p.last_seq,
                p.first_recv_ns,
                p.last_recv_ns,
                p.rows,
            ]
        )
    for path in sorted(unreadable):
        st = path.stat()
        files.append([path.name, st.st_size, st.st_mtime_ns])
    text = json.dumps({"format": FORMAT, "decoder": _decoder_version(), "files": files})
    return hashlib.sha256(text.encode()).hexdigest()


def decode_parts(
    parts: Sequence[PartFile],
    symbol: str,
    carry: Sequence[Checkpoint] = (),
    start_ns: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Decoded:
    """Decode a partition from its part files, one record batch at a time.

    *carry* and *start_ns* as for :class:`~replay.decode.PartitionDecoder`.
    *progress*, if given, is called with the row count of each batch decoded
    (once with all rows when overlapping runs are merged first).
    """
    conns = connection_rows(contract.iter_parts(parts, ["source", "run_id", "conn_id"]))
    if conns.interleaved:
        decoded = decode_overlapping(contract.read_parts(parts), symbol, carry, start_ns)
        if progress is not None:
            progress(sum(p.rows for p in parts))
        return decoded
    decoder = PartitionDecoder(
        symbol, conns.last_ws, rows=sum(p.rows for p in parts), carry=carry, start_ns=start_ns
    )
    for batch in contract.iter_parts(parts):
        decoder.feed(batch)
        if progress is not None:
            progress(batch.num_rows)
    return decoder.finish()


class _Parts(NamedTuple):
    """A partition's part files as found: readable footers (contract order), the others."""

    partition: Partition
    footers: list[PartFile]
    damaged: list[CorruptFileError]

    @property
    def key(self) -> str:
        return key_of(self.footers, [e.path for e in self.damaged if e.path is not None])

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.footers)

    @property
    def directory(self) -> Root:
        first = self.footers[0].path if self.footers else self.damaged[0].path
        assert first is not None
        return first.parent


def _scan(root: RootLike, venue: str, date: str, symbol: str) -> _Parts:
    partition = Partition(venue, contract.check_date(date), symbol)
    footers, damaged = contract.scan_parts(root, partition)
    return _Parts(partition, footers, [e for e in damaged if e.path is not None])


def _decode_checked(
    found: _Parts,
    skip_bad: bool,
    carry: Sequence[Checkpoint] = (),
    start_ns: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Decoded:
    """Decode the good parts of *found* (:mod:`replay.quarantine`); the bad ones stop
    it, or with *skip_bad* are left out as ``bad_file`` gaps."""
    screened = quarantine.screen(found.partition, found.footers, found.damaged)
    while True:
        if screened.bad and not skip_bad:
            raise quarantine.refusal(screened.bad, found.directory)
        try:
            decoded = decode_parts(
                screened.parts, found.partition.symbol, carry, start_ns, progress
            )
        except CorruptFileError as exc:
            # A page that fails its checksum outside the columns screened: that part
            # is bad too, and the partition is decoded again without it.
            if exc.path is None or exc.path.name not in screened.spans:
                raise
            screened = quarantine.leave_out(screened, exc.path, exc.reason)
            continue
        return quarantine.mark(decoded, screened.bad)


def _check_bad(bad: Sequence[BadFile], skip_bad: bool, directory: Root) -> None:
    """Refuse a cached partition that has bad parts, unless *skip_bad*."""
    if bad and not skip_bad:
        raise quarantine.refusal(bad, directory)


def midnight_ns(date: str) -> int:
    """The UTC midnight that starts *date* (``YYYY-MM-DD``), in ns since the epoch."""
    return (dt.date.fromisoformat(date) - dt.date(1970, 1, 1)).days * _NS_PER_DAY


def previous_date(date: str) -> str:
    return (dt.date.fromisoformat(date) - dt.timedelta(days=1)).isoformat()


def decode_partition(
    root: RootLike,
    venue: str,
    date: str,
    symbol: str,
    cache: bool = True,
    carry: bool = False,
    progress: Progress | None = None,
    skip_bad: bool = False,
) -> Decoded:
    """One partition decoded: from the cache when it is current, else from raw (then stored).

    When the partition is decoded from raw and *progress* is given, the rows
    decoded so far are shown on it (:class:`tickrec.progress.RowMeter`).

    With ``cache=False`` the cache is neither read nor written. With *carry*,
    connections open and in sync at the end of the previous date
    (:func:`day_ends`) go on with their books (:class:`~replay.decode.PartitionDecoder`).

    A bad part (:mod:`replay.quarantine`), of this date or of the previous
    one when carrying, raises :class:`~tickrec.errors.CorruptFileError`
    naming it, unless *skip_bad* leaves it out as a ``bad_file`` gap.
    """
    found = _scan(root, venue, date, symbol)
    if not found.footers and not found.damaged:
        raise contract.missing_partition(root, venue, date, symbol)
    ends = day_ends(root, venue, previous_date(date), symbol, cache, skip_bad) if carry else ()
    start = midnight_ns(date)
    meter = None
    if progress is not None:
        meter = RowMeter(progress, f"decode {venue} {date} {symbol}", found.rows)
    if not cache:
        return _decode_checked(found, skip_bad, ends, start, meter)
    key = found.key
    entry = key
    if ends:
        text = json.dumps([e.to_json() for e in ends], separators=(",", ":"))
        entry = hashlib.sha256(f"{key}\0{text}".encode()).hexdigest()
    directory = cache_dir(root, venue, date, symbol)
    decoded = load(directory, entry)
    if decoded is None:
        decoded = _decode_checked(found, skip_bad, ends, start, meter)
        try:
            store(directory, entry, decoded)
        except OSError as exc:
            log.warning("normalized cache not written to %s (%s)", directory, exc)
    _check_bad(decoded.bad, skip_bad, found.directory)
    if not decoded.carried:  # nothing carried: the partition as replayed alone
        _store_ends(directory, key, decoded.ends, decoded.bad)
    return decoded


def day_ends(
    root: RootLike,
    venue: str,
    date: str,
    symbol: str,
    cache: bool = True,
    skip_bad: bool = False,
) -> tuple[Checkpoint, ...]:
    """The :attr:`~replay.events.Decoded.ends` of a partition replayed alone; () if none.

    Read from the entry's ``ends.json`` when current, else computed (and written).
    Bad parts as for :func:`decode_partition`.
    """
    found = _scan(root, venue, date, symbol)
    if not found.footers and not found.damaged:
        return ()
    if not cache:
        return _decode_checked(found, skip_bad).ends
    key = found.key
    directory = cache_dir(root, venue, date, symbol)
    got = _load_ends(directory, key)
    if got is not None:
        _check_bad(got[1], skip_bad, found.directory)
        return got[0]
    decoded = load(directory, key)  # the entry, if it holds the partition alone
    if decoded is None:
        decoded = _decode_checked(found, skip_bad)
        if not (directory / _MANIFEST).exists():
            try:
                store(directory, key, decoded)
            except OSError as exc:
                log.warning("normalized cache not written to %s (%s)", directory, exc)
    _check_bad(decoded.bad, skip_bad, found.directory)
    _store_ends(directory, key, decoded.ends, decoded.bad)
    return decoded.ends


def _store_ends(
    directory: Path, key: str, ends: Sequence[Checkpoint], bad: Sequence[BadFile]
) -> None:
    if _load_ends(directory, key) is not None:
        return
    text = json.dumps(
        {"key": key, "ends": [e.to_json() for e in ends], "bad": [list(b) for b in bad]},
        separators=(",", ":"),
    )
    try:
        make_dirs(directory)
        write_atomic(directory / _ENDS, lambda fh: fh.write(text.encode()))
    except OSError as exc:
        log.warning("normalized cache not written to %s (%s)", directory, exc)


def _load_ends(
    directory: Path, key: str
) -> tuple[tuple[Checkpoint, ...], tuple[BadFile, ...]] | None:
    path = directory / _ENDS
    if not path.exists():
        return None
    try:
        m = json.loads(path.read_bytes())
        if m.get("key") != key:
            return None
        ends = tuple(Checkpoint.from_json(e) for e in m["ends"])
        return ends, _bad_files(m["bad"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("normalized cache %s is unreadable (%s); rebuilding", path, exc)
        return None


def _bad_files(rows: list[list[Any]]) -> tuple[BadFile, ...]:
    return tuple(BadFile(str(n), str(r), int(a), int(z)) for n, r, a, z in rows)


# --- writing ---------------------------------------------------------------------------


def _tables(dec: Decoded) -> dict[str, pa.Table]:
    ops, tr = dec.ops, dec.trades
    rest_side, rest_px, rest_sz = [], [], []
    for r in dec.rest:
        for side, (px, sz) in enumerate(((r.bid_px, r.bid_sz), (r.ask_px, r.ask_sz))):
            rest_side.append(np.full(len(px), side, np.int8))
            rest_px.append(px)
            rest_sz.append(sz)

    def cat(arrays: list[Any], dtype: Any) -> Any:
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype)

    return {
        "ops": pa.table({f: getattr(ops, f) for f in BookOps.__dataclass_fields__}),
        "trades": pa.table({f: getattr(tr, f) for f in Trades.__dataclass_fields__}),
        "msgs": pa.table({"ts": dec.msg_ts, "conn": dec.msg_conn}),
        "rest": pa.table(
            {
                "side": cat(rest_side, np.int8),
                "price": cat(rest_px, np.int64),
                "size": cat(rest_sz, np.int64),
            }
        ),
    }


def store(directory: Path, key: str, dec: Decoded) -> None:
    """Write *dec* as the cache entry *directory* for *key* (replacing any other)."""
    make_dirs(directory)
    (directory / _MANIFEST).unlink(missing_ok=True)
    files = {}
    for name, table in _tables(dec).items():
        path = directory / f"{name}.parquet"
        # One row group: each column then reads back as one array, used without a copy.
        write = functools.partial(
            pq.write_table,
            table,
            compression=_COMPRESSION,
            row_group_size=max(table.num_rows, 1),
            use_dictionary=False,
            column_encoding=dict.fromkeys(_DELTAS[name], "DELTA_BINARY_PACKED") or None,
            write_page_checksum=True,
        )
        write_atomic(path, write)
        files[name] = table.num_rows
    manifest = {
        "key": key,
        "files": files,
        "price_scale": dec.price_scale,
        "size_scale": dec.size_scale,
        "protocols": list(dec.protocols),
        "rows": dec.rows,
        "first_ns": dec.first_ns,
        "last_ns": dec.last_ns,
        "counts": dec.counts,
        "markers": [list(m) for m in dec.markers],
        "breaks": [list(b) for b in dec.breaks],
        "rest": [[r.sent, r.recv, r.grp, len(r.bid_px), len(r.ask_px)] for r in dec.rest],
        "ends": [e.to_json() for e in dec.ends],
        "carried": [list(k) for k in dec.carried],
        "bad": [list(b) for b in dec.bad],
    }
    text = json.dumps(manifest, separators=(",", ":")).encode()
    write_atomic(directory / _MANIFEST, lambda fh: fh.write(text))


# --- reading ---------------------------------------------------------------------------


def _columns(path: Path, rows: int) -> dict[str, Any]:
    """Every column of a cache table as a numpy array, read on all cores.

    A table written as one row group reads back as one chunk per column, and
    each array is then a zero-copy, read-only view of Arrow memory.
    """
    # ParquetFile.read: pq.read_table holds twice the memory while it reads. Mapped,
    # the compressed pages stay in the page cache instead of a second copy in memory.
    # Page checksums verified: a damaged entry is unreadable (and rebuilt), never wrong.
    reader = pq.ParquetFile(path, memory_map=True, page_checksum_verification=True)
    table = reader.read(use_threads=True)
    if table.num_rows != rows:
        raise ValueError(f"{path.name} has {table.num_rows} rows, the manifest says {rows}")
    return {
        name: to_numpy(col.chunk(0) if col.num_chunks == 1 else col.combine_chunks())
        for name, col in zip(table.column_names, table.columns, strict=True)
    }


def load(directory: Path, key: str) -> Decoded | None:
    """The cache entry in *directory* if it exists, is intact and was made for *key*; else None."""
    manifest_path = directory / _MANIFEST
    if not manifest_path.exists():
        return None
    try:
        m = json.loads(manifest_path.read_bytes())
        if m.get("key") != key:
            log.info("normalized cache %s is out of date; rebuilding", directory)
            return None
        cols = {name: _columns(directory / f"{name}.parquet", m["files"][name]) for name in _TABLES}
        rest: list[RestBook] = []
        rc = cols["rest"]
        k = 0
        for sent, recv, grp, nb, na in m["rest"]:
            rest.append(
                RestBook(
                    sent,
                    recv,
                    grp,
                    rc["price"][k : k + nb],
                    rc["size"][k : k + nb],
                    rc["price"][k + nb : k + nb + na],
                    rc["size"][k + nb : k + nb + na],
                )
            )
            k += nb + na
        if k != len(rc["price"]):
            raise ValueError("REST levels do not match the manifest")
        return Decoded(
            ops=BookOps(**cols["ops"]),
            trades=Trades(**cols["trades"]),
            rest=rest,
            markers=[Marker(*x) for x in m["markers"]],
            breaks=[SeqBreak(*x) for x in m["breaks"]],
            msg_ts=cols["msgs"]["ts"],
            msg_conn=cols["msgs"]["conn"],
            price_scale=int(m["price_scale"]),
            size_scale=int(m["size_scale"]),
            protocols=tuple(m["protocols"]),
            rows=int(m["rows"]),
            first_ns=int(m["first_ns"]),
            last_ns=int(m["last_ns"]),
            counts={str(k): int(v) for k, v in m["counts"].items()},
            ends=tuple(Checkpoint.from_json(e) for e in m["ends"]),
            carried=tuple((str(r), int(c)) for r, c in m["carried"]),
            bad=_bad_files(m["bad"]),
        )
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        log.warning("normalized cache %s is unreadable (%s); rebuilding", directory, exc)
        return None
