"""The recorder's write-ahead journal, in the manner of a kdb+tick tickerplant log.

Every row goes to the journal before anything else happens to it, so a crash
loses at most what was not yet fsynced. Layout, per recorder run::

    {root}/journal/{run_id}/lock            flock held by the live recorder
    {root}/journal/{run_id}/reserve         room kept for a loss row on a full disk
    {root}/journal/{run_id}/seg-000001.tj   segments, one per rotation period

A segment starts with a header, then holds records::

    header  = b"TKRJ" | u16 version | u32 n | meta (n bytes, JSON) | u32 crc32(all before)
    record  = u32 length | u32 crc32(length bytes + body) | body
    body    = i64 recv_ns | i64 seq | i32 conn_id | u8 null flags
              | i64 exch_ns | i64 venue_seq | i64 sent_ns
              | u8 len | u8 len | u16 len | protocol | source | symbols (comma-joined)
              | payload (UTF-8, to the end of the body, byte-exact)

All integers are little-endian. The segment header carries the run (venue,
protocol, symbols), the segment number and the first ``seq`` it may hold. A
segment file appears only with a complete, fsynced header (temporary name,
then rename), so the newest segment always tells where the run's ``seq``
stood. A reader trusts records up to the first one that is short, has an
impossible length, or fails its checksum, and reports how many bytes follow.

Writes go to the OS at once (one ``pwrite`` per record, under the lock that
also assigns ``seq``), except that a caller may defer records to write them
together: a connection writes the messages of one socket read in one
``pwrite``, before it reads the socket again. A flusher thread fsyncs at
least every ``fsync_interval``. A failed write (disk full, file too large,
read-only) is cut back to the last record boundary, so no half record is ever
followed by a good one; the records wait in memory with everything after
them, in order, while the flusher makes room by having closed segments
turned into Parquet, until the disk takes them or a limit is reached and a
``journal_loss`` row names the records dropped (see :class:`Journal`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import orjson

from recorder.rotation import next_rotation_ns
from tickrec.contract import RUN_CONN_ID, Row, check_name, event_payload
from tickrec.durable import fsync_dir, make_dirs
from tickrec.errors import JournalError

__all__ = [
    "FORMAT_VERSION",
    "LOCK_NAME",
    "MAGIC",
    "RESERVE_NAME",
    "Journal",
    "JournalRecord",
    "RunMeta",
    "SegmentMeta",
    "SegmentScan",
    "decode_body",
    "encode_record",
    "free_bytes",
    "journal_dir",
    "list_segments",
    "scan_segment",
    "segment_name",
    "try_lock",
]

MAGIC = b"TKRJ"
FORMAT_VERSION = 1
#: Records longer than this are taken as a corrupt length field.
MAX_RECORD_BYTES = 1 << 28

_HEAD = struct.Struct("<4sHI")
_U32 = struct.Struct("<I")
_REC = struct.Struct("<II")
_FIXED, _LABELS = struct.Struct("<qqiBqqq"), struct.Struct("<BBH")  # the body's two parts
_BODY = struct.Struct(_FIXED.format + _LABELS.format[1:])
_EXCH, _VSEQ, _SENT = 1, 2, 4
_SEG_PREFIX, _SEG_SUFFIX = "seg-", ".tj"
#: Name of the lock file in a run's journal directory (held by the live recorder).
LOCK_NAME = "lock"
#: Name of the reserve file in a run's journal directory, and its size: room
#: given back on a full disk to write the ``journal_loss`` row of dropped records.
RESERVE_NAME, RESERVE_BYTES = "reserve", 256 << 10
#: The room a segment needs to become Parquet: this fraction of its size plus
#: :data:`CONVERT_MARGIN` bytes (its parts measured 0.12 of it on v1, 0.23 on the
#: current API). The flusher closes a segment early when the filesystem has
#: less free, and held records are written only while it keeps that much.
CONVERT_ROOM, CONVERT_MARGIN = 0.4, 64 << 10
_STAMP = struct.Struct("<qq")  # a body's recv_ns and seq

log = logging.getLogger("tickrec.recorder")


@dataclass(frozen=True)
class RunMeta:
    """What a journal records about its run: it names the partitions of every row."""

    run_id: str
    venue: str
    protocol: str
    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        check_name("run id", self.run_id)
        check_name("venue", self.venue)
        for symbol in self.symbols:
            check_name("symbol", symbol)


@dataclass(frozen=True)
class SegmentMeta:
    """The header of one segment."""

    run: RunMeta
    n: int
    first_seq: int
    created_ns: int

    def encode(self) -> bytes:
        """The header bytes of a segment with this meta."""
        meta = orjson.dumps(
            {
                "run_id": self.run.run_id,
                "venue": self.run.venue,
                "protocol": self.run.protocol,
                "symbols": list(self.run.symbols),
                "n": self.n,
                "first_seq": self.first_seq,
                "created_ns": self.created_ns,
            }
        )
        head = _HEAD.pack(MAGIC, FORMAT_VERSION, len(meta)) + meta
        return head + _U32.pack(zlib.crc32(head))


class JournalRecord(NamedTuple):
    """One journal record: a contract row and the symbol partitions it goes to."""

    row: Row
    symbols: tuple[str, ...]


def segment_name(n: int) -> str:
    """File name of segment *n*."""
    return f"{_SEG_PREFIX}{n:06d}{_SEG_SUFFIX}"


def journal_dir(root: str | os.PathLike[str], run_id: str) -> Path:
    """Journal directory of one run."""
    return Path(root) / "journal" / check_name("run id", run_id)


def list_segments(run_dir: Path) -> list[tuple[int, Path]]:
    """``(n, path)`` of every segment in *run_dir*, by segment number."""
    found = []
    for p in run_dir.iterdir() if run_dir.is_dir() else ():
        name = p.name
        if name.startswith(_SEG_PREFIX) and name.endswith(_SEG_SUFFIX):
            digits = name[len(_SEG_PREFIX) : -len(_SEG_SUFFIX)]
            if digits.isdigit():
                found.append((int(digits), p))
    return sorted(found)


def try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on *path* (created if needed), or None if held elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


# --- encoding ---------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _labels(protocol: str, source: str, symbols: tuple[str, ...]) -> bytes:
    """The label lengths and labels of a record body (a run has only a few distinct ones)."""
    proto_b, source_b = protocol.encode(), source.encode()
    symbols_b = ",".join(symbols).encode()
    return (
        _LABELS.pack(len(proto_b), len(source_b), len(symbols_b)) + proto_b + source_b + symbols_b
    )


def encode_record(
    recv_ns: int,
    seq: int,
    conn_id: int,
    protocol: str,
    source: str,
    payload: str | bytes,
    symbols: Iterable[str],
    exch_ns: int | None = None,
    venue_seq: int | None = None,
    sent_ns: int | None = None,
) -> bytes:
    """One framed record (length, checksum, body); a bytes *payload* must be valid UTF-8."""
    flags = (
        (_EXCH if exch_ns is not None else 0)
        | (_VSEQ if venue_seq is not None else 0)
        | (_SENT if sent_ns is not None else 0)
    )
    head = _FIXED.pack(
        recv_ns, seq, conn_id, flags, exch_ns or 0, venue_seq or 0, sent_ns or 0
    ) + _labels(protocol, source, tuple(symbols))
    body = payload if isinstance(payload, bytes) else payload.encode()
    length = _U32.pack(len(head) + len(body))
    # The checksum covers the length too, so a torn length is caught (module docstring).
    crc = zlib.crc32(body, zlib.crc32(head, zlib.crc32(length)))
    return b"".join((length, _U32.pack(crc), head, body))


def decode_body(body: bytes | memoryview, run_id: str) -> JournalRecord:
    """The record held in one (checksum-verified) body."""
    (recv_ns, seq, conn_id, flags, exch_ns, venue_seq, sent_ns, lp, ls, lsym) = _BODY.unpack_from(
        body
    )
    at = _BODY.size
    raw = bytes(body[at:])
    protocol = raw[:lp].decode()
    source = raw[lp : lp + ls].decode()
    symbols = raw[lp + ls : lp + ls + lsym].decode()
    payload = raw[lp + ls + lsym :].decode()
    row = Row(
        recv_ns,
        seq,
        run_id,
        conn_id,
        protocol,
        source,
        payload,
        exch_ns if flags & _EXCH else None,
        venue_seq if flags & _VSEQ else None,
        sent_ns if flags & _SENT else None,
    )
    return JournalRecord(row, tuple(symbols.split(",")) if symbols else ())


# --- reading ----------------------------------------------------------------------


@dataclass
class SegmentScan:
    """What a segment holds: its header, every good record, and what was lost after them."""

    path: Path
    meta: SegmentMeta
    records: list[JournalRecord]
    size: int
    good_bytes: int
    problem: str | None

    @property
    def lost_bytes(self) -> int:
        """Bytes after the last good record (0 for a clean segment)."""
        return self.size - self.good_bytes

    @property
    def last_seq(self) -> int:
        """Highest ``seq`` the segment proves used (its header's ``first_seq - 1`` if empty)."""
        return self.records[-1].row.seq if self.records else self.meta.first_seq - 1

    @property
    def last_recv_ns(self) -> int:
        """``recv_ns`` of the last good record, else the segment's creation time."""
        return self.records[-1].row.recv_ns if self.records else self.meta.created_ns


def _read_meta(path: Path, data: bytes) -> tuple[SegmentMeta, int]:
    if len(data) < _HEAD.size:
        raise JournalError(f"{path}: too short for a journal header ({len(data)} bytes)")
    magic, version, n = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise JournalError(f"{path}: not a tickrec journal segment (bad magic)")
    if version != FORMAT_VERSION:
        raise JournalError(f"{path}: journal format version {version}, expected {FORMAT_VERSION}")
    end = _HEAD.size + n
    if len(data) < end + _U32.size or _U32.unpack_from(data, end)[0] != zlib.crc32(data[:end]):
        raise JournalError(f"{path}: journal header is damaged (checksum)")
    try:
        m = orjson.loads(data[_HEAD.size : end])
        run = RunMeta(m["run_id"], m["venue"], m["protocol"], tuple(m["symbols"]))
        meta = SegmentMeta(run, int(m["n"]), int(m["first_seq"]), int(m["created_ns"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"{path}: journal header is unreadable ({exc})") from None
    return meta, end + _U32.size


def _iter_records(
    data: bytes, start: int, run_id: str, problem: list[str]
) -> Iterator[tuple[JournalRecord, int]]:
    at, size = start, len(data)
    view = memoryview(data)
    while at < size:
        if size - at < _REC.size:
            problem.append(f"torn record header at offset {at}")
            return
        length, crc = _REC.unpack_from(data, at)
        if length < _BODY.size or length > MAX_RECORD_BYTES:
            problem.append(f"impossible record length {length} at offset {at}")
            return
        end = at + _REC.size + length
        if end > size:
            problem.append(f"torn record at offset {at} ({size - at} of {end - at} bytes)")
            return
        body = view[at + _REC.size : end]
        if zlib.crc32(body, zlib.crc32(data[at : at + 4])) != crc:
            problem.append(f"checksum mismatch at offset {at}")
            return
        try:
            record = decode_body(body, run_id)
        except (struct.error, UnicodeDecodeError) as exc:
            problem.append(f"undecodable record at offset {at} ({exc})")
            return
        yield record, end
        at = end


def scan_segment(path: Path) -> SegmentScan:
    """Read a whole segment: every record up to the first damaged one.

    Raises :class:`JournalError` only when the header itself is unreadable.
    """
    data = path.read_bytes()
    meta, start = _read_meta(path, data)
    problems: list[str] = []
    records: list[JournalRecord] = []
    good = start
    for record, end in _iter_records(data, start, meta.run.run_id, problems):
        records.append(record)
        good = end
    return SegmentScan(path, meta, records, len(data), good, problems[0] if problems else None)


# --- writing ----------------------------------------------------------------------


class _Segment:
    """One open segment file: positional writes with a known good size."""

    def __init__(self, path: Path, fd: int, size: int, meta: SegmentMeta) -> None:
        self.path, self.fd, self.size, self.meta = path, fd, size, meta
        self.records = 0
        self.torn = False  # bytes past ``size`` that could not be cut off yet

    @classmethod
    def create(cls, run_dir: Path, meta: SegmentMeta) -> _Segment:
        """Create segment *meta.n* with its header durable before it gets its final name."""
        final = run_dir / segment_name(meta.n)
        tmp = run_dir / f".{final.name}.tmp"
        header = meta.encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, header)
            os.fsync(fd)
            os.rename(tmp, final)
            fsync_dir(run_dir)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(final, fd, len(header), meta)

    def write(self, data: bytes) -> None:
        """Write *data* at the good end, or leave the file as it was and raise OSError."""
        if self.torn:
            os.ftruncate(self.fd, self.size)
            self.torn = False
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], self.size + done)
        except OSError:
            if done:
                self.torn = True
                try:
                    os.ftruncate(self.fd, self.size)
                    self.torn = False
                except OSError:
                    pass  # retried before the next write; the checksum covers a reader meanwhile
            raise
        self.size += len(data)

    def close(self) -> None:
        """Fsync and close; cut off a torn tail first if one is left."""
        try:
            if self.torn:
                os.ftruncate(self.fd, self.size)
            os.fsync(self.fd)
        finally:
            os.close(self.fd)


@dataclass
class _DiskTrouble:
    """A stretch during which the disk refuses the journal; records wait in memory."""

    since_ns: int
    error: OSError
    records: int = 0
    bytes: int = 0
    segments_freed: int = 0  # segments closed during it, for conversion to make room


def _stamps(data: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(recv_ns, seq)`` of the first and of the last record in *data* (whole records)."""
    first = last = _STAMP.unpack_from(data, _REC.size)
    at = 0
    while at < len(data):
        last = _STAMP.unpack_from(data, at + _REC.size)
        at += _REC.size + _U32.unpack_from(data, at)[0]
    return first, last


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding *path*."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Journal:
    """The journal of one live run: appends rows, assigns ``seq``, fsyncs, rotates.

    *on_closed* is called with the path of every closed segment that holds
    records (in the thread that closed it); turning it into Parquet and
    deleting it is the caller's job (see :mod:`recorder.writer`). Empty
    closed segments are deleted here. *converting* tells how many handed
    over segments are not converted yet; while the disk is full the journal
    leaves the space that comes back to them (see :meth:`sync`).

    While the filesystem runs short, the flusher closes the segment early,
    while there is still room to convert it (:data:`CONVERT_ROOM`). When the
    disk refuses a write, the records wait in memory, in order, and the
    flusher works its way out: it closes the segment being written, so it
    can become Parquet (four to eight times smaller) and be deleted; once no
    segment waits for conversion it opens the next one and writes the held
    records, but only while the filesystem keeps room to convert what it
    wrote, closing it again for conversion when it does not. If the disk
    has not taken them after *disk_timeout* seconds, or they pass
    *max_backlog_bytes*, or *drain_for* seconds into :meth:`close`, they are
    dropped: a ``journal_loss`` event names their count, ``seq`` range and
    receive times, written with the room a reserve file (*reserve_bytes*,
    allocated at start) gives back, and the journal stops taking rows
    (:attr:`fatal`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        meta: RunMeta,
        *,
        fsync_interval: float = 0.1,
        rotate_every_ns: int = 15 * 60 * 1_000_000_000,
        max_segment_bytes: int = 128 << 20,
        on_closed: Callable[[Path], None] | None = None,
        converting: Callable[[], int] | None = None,
        clock: Callable[[], int] = time.time_ns,
        max_backlog_bytes: int = 256 << 20,
        disk_timeout: float = 600.0,
        reserve_bytes: int = RESERVE_BYTES,
        drain_for: float = 10.0,
    ) -> None:
        if fsync_interval <= 0:
            raise JournalError("fsync interval must be positive")
        self.meta = meta
        self.dir = journal_dir(root, meta.run_id)
        self._fsync_interval = fsync_interval
        self._rotate_every_ns = rotate_every_ns
        self._max_segment_bytes = max_segment_bytes
        self._on_closed = on_closed
        self._converting = converting
        self._clock = clock
        self._max_backlog_bytes = max_backlog_bytes
        self._disk_timeout_ns = int(disk_timeout * 1e9)
        self._drain_for = drain_for
        self._lock = threading.Lock()
        self._next_seq = 0
        self._deferred: list[bytes] = []  # appended with defer, not yet written, in seq order
        self._backlog: deque[tuple[bytes, int]] = deque()  # (records, how many) the disk refused
        self._trouble: _DiskTrouble | None = None
        self.fatal: JournalError | None = None
        #: Called with the seconds each fsync took (metrics), from the flusher thread.
        self.on_fsync: Callable[[float], None] | None = None
        self._closed = False
        self._lock_fd = self._make_dir()
        self._has_reserve = self._make_reserve(reserve_bytes)
        self._seg: _Segment | None
        try:
            self._seg = self._open_segment(1, self._clock())
        except OSError as exc:
            os.close(self._lock_fd)  # the empty run directory is left for recovery to remove
            raise JournalError(f"cannot create journal segment in {self.dir}: {exc}") from exc
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="journal-flush", daemon=True)
        self._flusher.start()

    # -- setup

    def _make_dir(self) -> int:
        """Create the run directory with its lock already held, atomically."""
        parent = self.dir.parent
        tmp = parent / f".{self.meta.run_id}.tmp"
        try:
            make_dirs(parent)
            tmp.mkdir()
            fd = try_lock(tmp / LOCK_NAME)
            if fd is None:
                raise JournalError(f"{tmp}: locked by another process")
            os.rename(tmp, self.dir)
            fsync_dir(parent)
        except FileExistsError:
            raise JournalError(f"journal {self.dir} already exists (run id reused?)") from None
        except OSError as exc:
            raise JournalError(f"cannot create journal directory {self.dir}: {exc}") from exc
        return fd

    def _make_reserve(self, size: int) -> bool:
        """Allocate the reserve file that pays for the ``journal_loss`` row on a full disk."""
        if size <= 0:
            return False
        path = self.dir / RESERVE_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot reserve %d bytes in %s: %s", size, self.dir, exc)
            path.unlink(missing_ok=True)
            return False
        return True

    def _free_reserve(self) -> None:
        if self._has_reserve:
            (self.dir / RESERVE_NAME).unlink(missing_ok=True)
            self._has_reserve = False

    def _open_segment(self, n: int, now_ns: int, first_seq: int | None = None) -> _Segment:
        first = self._next_seq if first_seq is None else first_seq
        seg = _Segment.create(self.dir, SegmentMeta(self.meta, n, first, now_ns))
        self._last_n = n
        self._rotate_at = next_rotation_ns(now_ns, self._rotate_every_ns)
        return seg

    # -- appending

    def append(
        self,
        recv_ns: int,
        conn_id: int,
        protocol: str,
        source: str,
        payload: str | bytes,
        symbols: Iterable[str],
        exch_ns: int | None = None,
        venue_seq: int | None = None,
        sent_ns: int | None = None,
        *,
        defer: bool = False,
    ) -> int:
        """Append one row, going to the partitions of *symbols*; return its ``seq``.

        With *defer* the record is kept in memory until :meth:`write_deferred`,
        the next append without *defer*, or the next fsync, whichever comes
        first, so that several records go to the OS in one write, in order.
        Raises :class:`JournalError` once the journal has given up (see :attr:`fatal`).
        """
        rotated = None
        with self._lock:
            if self.fatal is not None:
                raise self.fatal
            if self._closed:
                raise JournalError("journal is closed")
            seq = self._next_seq
            data = encode_record(
                recv_ns,
                seq,
                conn_id,
                protocol,
                source,
                payload,
                symbols,
                exch_ns,
                venue_seq,
                sent_ns,
            )
            seg = self._seg
            if (
                self._trouble is None
                and seg is not None
                and (recv_ns >= self._rotate_at or seg.size >= self._max_segment_bytes)
            ):
                self._write_deferred_locked()  # they belong to the segment being closed
                if self._trouble is None:
                    rotated = self._rotate_locked(recv_ns)
            self._next_seq = seq + 1
            self._deferred.append(data)
            if not defer:
                self._write_deferred_locked()
        if rotated is not None:
            self._finish(rotated)
        return seq

    def write_deferred(self) -> None:
        """Write the records appended with *defer* (one write for all of them)."""
        with self._lock:
            self._write_deferred_locked()

    def _write_deferred_locked(self) -> None:
        records = self._deferred
        if not records:
            return
        data = records[0] if len(records) == 1 else b"".join(records)
        self._deferred = []
        self._write_locked(data, len(records))

    def _write_locked(self, data: bytes, records: int) -> None:
        if self._trouble is not None or self._seg is None:
            self._hold_locked(data, records)
            return
        try:
            self._seg.write(data)
        except OSError as exc:
            self._trouble = _DiskTrouble(self._clock(), exc)
            log.error(
                "journal write failed (%s); holding records in memory and making room: %s",
                errno.errorcode.get(exc.errno or 0, "?"),
                exc,
            )
            self._hold_locked(data, records)
            return
        self._seg.records += records

    def _hold_locked(self, data: bytes, records: int) -> None:
        self._backlog.append((data, records))
        trouble = self._trouble
        assert trouble is not None
        trouble.records += records
        trouble.bytes += len(data)
        if trouble.bytes > self._max_backlog_bytes and self.fatal is None:
            self._give_up_locked(f"more than {self._max_backlog_bytes} bytes waiting")

    def _give_up_locked(self, why: str) -> None:
        """Drop the held records, store a ``journal_loss`` row naming them, and stop."""
        trouble = self._trouble
        assert trouble is not None
        held = list(self._backlog)
        self._backlog.clear()
        lost = sum(n for _, n in held)
        stored = False
        if held:
            (start_ns, first_seq), _ = _stamps(held[0][0])
            _, (end_ns, last_seq) = _stamps(held[-1][0])
            stored = self._store_loss_locked(
                event_payload(
                    "journal_loss",
                    why=why,
                    error=str(trouble.error),
                    errno=errno.errorcode.get(trouble.error.errno or 0, None),
                    since_ns=trouble.since_ns,
                    lost=lost,
                    first_seq=first_seq,
                    last_seq=last_seq,
                    start_ns=start_ns,
                    end_ns=end_ns,
                ),
                end_ns,
            )
        self._trouble = None
        said = (
            "written down as a journal_loss event"
            if stored
            else "the journal_loss event could not be written either"
        )
        self.fatal = JournalError(
            f"cannot write the journal in {self.dir}: {trouble.error} ({why}); "
            f"{lost} records received since the failure are lost ({said}); "
            "everything before is safe in the journal: free space, then run `tickrec recover`"
        )
        log.error("%s", self.fatal)

    def _store_loss_locked(self, payload: str, at_ns: int) -> bool:
        """Write one run-wide event row after dropped records, with the reserve's room."""
        self._free_reserve()
        seq = self._next_seq
        self._next_seq += 1
        data = encode_record(
            max(at_ns, self._clock()),
            seq,
            RUN_CONN_ID,
            self.meta.protocol,
            "event",
            payload,
            self.meta.symbols,
        )
        try:
            if self._seg is None:
                self._seg = self._open_segment(self._last_n + 1, self._clock(), seq)
            self._seg.write(data)
            os.fsync(self._seg.fd)
        except OSError as exc:
            log.error("cannot write the journal_loss event in %s: %s", self.dir, exc)
            return False
        self._seg.records += 1
        return True

    def _room_for(self, nbytes: int) -> bool:
        """Whether writing *nbytes* more leaves the room to convert the current segment."""
        assert self._seg is not None
        try:
            free = free_bytes(self.dir)
        except OSError:
            return True  # unknown: the write itself will tell
        need = nbytes + int((self._seg.size + nbytes) * CONVERT_ROOM) + CONVERT_MARGIN
        return free >= need

    def _make_room_locked(self) -> tuple[dict[str, object] | None, _Segment | None]:
        """One step out of a disk failure (see the class docstring).

        Returns the ``disk_error`` event to record once every held record is
        written, and a segment closed to make room, to hand over.
        """
        trouble = self._trouble
        if trouble is None:
            return None, None
        if self._seg is not None and self._seg.records:
            # What it holds can become Parquet, about five times smaller.
            closed, self._seg = self._seg, None
            trouble.segments_freed += 1
            return None, closed
        if self._converting is not None and self._converting() > 0:
            self._check_timeout_locked()  # the room that comes back is theirs
            return None, None
        try:
            if self._seg is None:
                first = _stamps(self._backlog[0][0])[0][1] if self._backlog else self._next_seq
                self._seg = self._open_segment(self._last_n + 1, self._clock(), first)
            while self._backlog:
                data, records = self._backlog[0]
                if self._seg.records and not self._room_for(len(data)):
                    return None, None  # closed for conversion at the next step
                self._seg.write(data)
                self._backlog.popleft()
                self._seg.records += records
        except OSError as exc:
            trouble.error = exc
            self._check_timeout_locked()
            return None, None
        self._trouble = None
        now = self._clock()
        log.warning(
            "journal writable again after %.1f s; %d held records written",
            (now - trouble.since_ns) / 1e9,
            trouble.records,
        )
        return {
            "error": str(trouble.error),
            "errno": errno.errorcode.get(trouble.error.errno or 0, None),
            "since_ns": trouble.since_ns,
            "resumed_ns": now,
            "records_held": trouble.records,
            "bytes_held": trouble.bytes,
            "segments_freed": trouble.segments_freed,
            "lost": 0,
        }, None

    def _due_locked(self, now_ns: int) -> bool:
        """Whether the flusher closes the segment now: its time, or the disk is getting full.

        A segment closed while the filesystem still has the room to convert
        it becomes Parquet and gives most of that room back; one kept open
        until the disk is full could not be converted at all.
        """
        assert self._seg is not None
        if now_ns >= self._rotate_at:
            return True
        if self._seg.size < CONVERT_MARGIN or (
            self._converting is not None and self._converting() > 0
        ):
            return False  # too small to give room back, or the room is being made already
        return not self._room_for(0)

    def _check_timeout_locked(self) -> None:
        trouble = self._trouble
        assert trouble is not None
        if self._clock() - trouble.since_ns > self._disk_timeout_ns and self.fatal is None:
            self._give_up_locked(f"still failing after {self._disk_timeout_ns / 1e9:.0f} s")

    # -- rotation and flushing

    def _rotate_locked(self, now_ns: int) -> _Segment | None:
        assert self._seg is not None
        try:
            new = self._open_segment(self._seg.meta.n + 1, now_ns)
        except OSError as exc:
            log.error("cannot open a new journal segment (%s); staying on the current one", exc)
            self._rotate_at = now_ns + 1_000_000_000
            return None
        old, self._seg = self._seg, new
        return old

    def _finish(self, seg: _Segment) -> None:
        """Close a rotated-out segment and hand it over (or delete it if it is empty)."""
        try:
            seg.close()
        except OSError as exc:
            log.error("closing journal segment %s failed: %s", seg.path, exc)
        if seg.records == 0:
            seg.path.unlink(missing_ok=True)
        elif self._on_closed is not None:
            self._on_closed(seg.path)

    @property
    def lock_fd(self) -> int:
        """The fd holding the run's lock; a child that inherits it keeps the run live."""
        return self._lock_fd

    @property
    def held_records(self) -> int:
        """Records the disk refused that wait in memory (0 while writes succeed)."""
        with self._lock:
            return sum(n for _, n in self._backlog)

    def rotate(self) -> None:
        """Close the current segment now and start the next one."""
        with self._lock:
            self._write_deferred_locked()
            old = self._rotate_locked(self._clock()) if self._trouble is None else None
        if old is not None:
            self._finish(old)

    def sync(self) -> None:
        """Write held records if the disk takes them, and fsync everything written so far."""
        event = None
        rotated = None
        with self._lock:
            if self._closed:
                return
            self._write_deferred_locked()
            event, rotated = self._make_room_locked()
            now = self._clock()
            if self._trouble is None and self._seg is not None and self._due_locked(now):
                rotated = self._rotate_locked(now)
            fd = os.dup(self._seg.fd) if self._seg is not None else -1
        try:
            if fd >= 0:
                began = time.perf_counter()
                os.fsync(fd)
                if self.on_fsync is not None:
                    self.on_fsync(time.perf_counter() - began)
        except OSError as exc:
            # After a failed fsync Linux may drop the dirty pages and report
            # success next time, so records already acknowledged could vanish
            # unseen: stop the run rather than trust the journal any further.
            with self._lock:
                if self.fatal is None:
                    self.fatal = JournalError(
                        f"cannot fsync the journal in {self.dir}: {exc}; records since the "
                        "last good fsync may be lost: check the disk, then run `tickrec recover`"
                    )
                    log.error("%s", self.fatal)
        finally:
            if fd >= 0:
                os.close(fd)
        if rotated is not None:
            self._finish(rotated)
        if event is not None and self.fatal is None:
            self.append(
                self._clock(),
                RUN_CONN_ID,
                self.meta.protocol,
                "event",
                event_payload("disk_error", **event),
                self.meta.symbols,
            )

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._fsync_interval):
            try:
                self.sync()
            except Exception:  # the flusher must outlive any one failure
                log.exception("journal flusher error")

    # -- closing

    def close(self) -> None:
        """Stop the flusher, write what the disk takes, and close the last segment.

        The last segment is handed to *on_closed* like any other. Records
        still held in memory because the disk refuses them are dropped, and
        a ``journal_loss`` event says so (see the class docstring); the
        journal on disk stays consistent. The lock stays held: see :meth:`release`.
        """
        self._stop.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join()
        self.sync()
        waited = time.monotonic() + self._drain_for
        while self._trouble is not None and self.fatal is None and time.monotonic() < waited:
            time.sleep(self._fsync_interval)  # the room being made may take the held records
            self.sync()
        with self._lock:
            if self._closed:
                return
            self._write_deferred_locked()  # appended since the sync above
            self._closed = True
            if self._trouble is not None and self.fatal is None:
                if self._backlog:
                    self._give_up_locked("shutting down")
                else:
                    self._trouble = None  # the disk failed on nothing left to write
            seg, self._seg = self._seg, None
        if seg is not None:
            self._finish(seg)

    def release(self) -> None:
        """Drop the run's lock, removing the journal directory if nothing is left in it."""
        if self._lock_fd < 0:
            return
        self._free_reserve()
        if not list_segments(self.dir):
            (self.dir / LOCK_NAME).unlink(missing_ok=True)
            # A stray file may be left; recovery removes the directory later.
            with contextlib.suppress(OSError):
                self.dir.rmdir()
        os.close(self._lock_fd)
        self._lock_fd = -1
