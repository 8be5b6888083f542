"""Bad parts: found before a partition is decoded, refused, or left out as ``bad_file`` gaps.

A part is *bad* when it cannot be read, or when it contradicts its footer,
its partition's date or the contract's order (docs/architecture.md section
2): the checks of :func:`tickrec.verify.check_part` over the
:data:`~tickrec.verify.KEY_COLUMNS` (``recv_ts``, ``seq``, ``source``,
every page of them checked against its checksum), and
:func:`~tickrec.verify.seq_overlaps` between the parts of one run. A part
whose other pages fail their checksums while it is decoded is bad too.
:func:`screen` makes these checks before any row is decoded, so a bad part
never reaches the decoder half read.

Without ``skip_bad`` a replay stops at a bad part with a
:class:`~tickrec.errors.CorruptFileError` naming it and why
(:func:`refusal`). With ``skip_bad`` the part is left out, as if it had
never been written, and becomes a ``bad_file`` gap (:mod:`replay.gaps`)
over the time it covers:

- the first to the last ``recv_ts`` of its rows on the partition's date,
  when its ``recv_ts`` column can be read;
- else the range its footer's column statistics give, cut to the date;
- else (no readable footer) from the time in its name (cut to the date) to
  the time in the name of the next part of the partition, or to the end of
  the date when no part follows: nothing else says where its rows ended.

The gap lasts on until the book is rebuilt (a snapshot, or the end of the
connection), as the rows left out may have changed it. The partition's span
covers the bad parts' time, and its end-of-day checkpoints are dropped when
a bad part ends after its last snapshot, so a book that may have missed
changes is never carried over midnight. The rest of the day decodes exactly
as it would without the bad part's file; which parts are bad, and so every
output, depends only on the files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from replay.events import BadFile, Decoded
from tickrec.contract import PartFile, Partition, parse_part_name
from tickrec.errors import CorruptFileError
from tickrec.events import OP_VALID
from tickrec.store import Root
from tickrec.verify import KEY_COLUMNS, check_part, seq_overlaps

__all__ = ["Screened", "leave_out", "mark", "refusal", "screen"]

_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass
class Screened:
    """A partition's parts after :func:`screen`: the good ones and the bad ones."""

    parts: list[PartFile]
    """The good parts, in contract order."""
    bad: list[BadFile]
    """The bad parts, by ``(start, name)``."""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Receive-time span of each good part's rows (by name), should it turn out bad later."""


def _day(date: str) -> tuple[int, int]:
    first = (dt.date.fromisoformat(date) - dt.date(1970, 1, 1)).days * _NS_PER_DAY
    return first, first + _NS_PER_DAY - 1


def _named_span(name: str, names: Sequence[str], date: str) -> tuple[int, int]:
    """From the time in part *name*'s name to the next part's (of *names*), on *date*."""
    first, last = _day(date)
    starts = sorted(int(parsed[0]) for n in names if (parsed := parse_part_name(n)))
    parsed = parse_part_name(name)
    start = min(max(int(parsed[0]) if parsed else first, first), last)
    later = [t for t in starts if t > start]
    end = min(later[0], last) if later else last
    return start, end


def _sorted(bad: list[BadFile]) -> list[BadFile]:
    return sorted(bad, key=lambda b: (b.start, b.name))


def screen(
    partition: Partition, footers: Sequence[PartFile], damaged: Sequence[CorruptFileError]
) -> Screened:
    """Check each part of *partition*: *footers* are the readable footers in contract
    order, *damaged* the errors of the parts whose footer cannot be read."""
    names = [p.path.name for p in footers] + [e.path.name for e in damaged if e.path]
    bad = [
        BadFile(e.path.name, e.reason, *_named_span(e.path.name, names, partition.date))
        for e in damaged
        if e.path is not None
    ]
    good: list[PartFile] = []
    spans: dict[str, tuple[int, int]] = {}
    for part in footers:
        check = check_part(part.path, partition, KEY_COLUMNS)
        span = check.span or _named_span(part.path.name, names, partition.date)
        if check.problems:
            bad.append(BadFile(part.path.name, "; ".join(check.problems), *span))
        else:
            good.append(part)
            spans[part.path.name] = span
    overlaps = seq_overlaps(good)
    for path, what in overlaps.items():
        bad.append(BadFile(path.name, what, *spans.pop(path.name)))
    good = [p for p in good if p.path not in overlaps]
    return Screened(good, _sorted(bad), spans)


def leave_out(screened: Screened, path: Path, reason: str) -> Screened:
    """*screened* with its good part at *path* found bad after all (for *reason*)."""
    span = screened.spans[path.name]
    parts = [p for p in screened.parts if p.path.name != path.name]
    spans = {n: s for n, s in screened.spans.items() if n != path.name}
    return Screened(parts, _sorted([*screened.bad, BadFile(path.name, reason, *span)]), spans)


def refusal(bad: Sequence[BadFile], directory: Root) -> CorruptFileError:
    """The error a replay without ``skip_bad`` stops with: the first bad part, and why."""
    first = bad[0]
    path = directory / first.name
    if len(bad) > 1:
        more = f" ({len(bad) - 1} more bad in {directory})"
        out = "leaves them out as bad_file gaps"
    else:
        more, out = "", "leaves it out as a bad_file gap"
    return CorruptFileError(f"{path}: {first.reason}{more}; --skip-bad (skip_bad=True) {out}", path)


def mark(decoded: Decoded, bad: Sequence[BadFile]) -> Decoded:
    """*decoded* (the good parts) with the bad parts' gaps, span and end-of-day rule."""
    if not bad:
        return decoded
    lo, hi = min(b.start for b in bad), max(b.end for b in bad)
    if decoded.rows:
        lo, hi = min(lo, decoded.first_ns), max(hi, decoded.last_ns)
    ops = decoded.ops
    snaps = ops.ts[ops.op == OP_VALID]
    last_snapshot = int(snaps.max()) if len(snaps) else None
    stale = last_snapshot is None or any(b.end >= last_snapshot for b in bad)
    ends = () if stale else decoded.ends
    return dataclasses.replace(
        decoded, bad=tuple(bad), first_ns=int(lo), last_ns=int(hi), ends=ends
    )
