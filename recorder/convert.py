"""Converting one closed journal segment in a child process, so capture never waits for it.

Parsing a segment and writing Parquet takes seconds of CPU under the GIL
and memory in proportion to the segment; in the recorder's own process that
delays the time-stamping of every message received meanwhile. The
:class:`~recorder.writer.Converter` thread therefore runs
``python -m recorder.convert ROOT SEGMENT`` and only waits for its result.

The child holds the run's journal lock (inherited from the recorder), so no
recovery converts the same run while it works, and it dies with the thread
that started it (``PR_SET_PDEATHSIG``). It is crash-safe for the same reason
the in-process conversion is: parts appear only by atomic rename under
names fixed by the segment, the segment is deleted only after all of them,
and a killed child's temporary parts are orphans that recovery removes. A
rerun skips the parts already there, so nothing is written twice.

The child prints one JSON object on stdout and exits with:

- 0: converted, ``{"written": [...], "skipped": [...], "rows": N}``;
- :data:`EXIT_DAMAGED`: the segment is damaged, ``{"problem": "..."}`` (left for recovery);
- :data:`EXIT_OS_ERROR`: an OS error (the disk is full, say), ``{"error": "..."}``;
- :data:`EXIT_FAILED`: any other failure, which would happen again, ``{"error": "..."}``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

import orjson

from recorder.journal import scan_segment
from recorder.writer import convert_segment

__all__ = ["EXIT_DAMAGED", "EXIT_FAILED", "EXIT_OS_ERROR", "main"]

EXIT_FAILED, EXIT_DAMAGED, EXIT_OS_ERROR = 1, 3, 75

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when the thread that started it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the inherited journal lock still keeps recovery away
    if parent and os.getppid() != parent:
        sys.exit(EXIT_OS_ERROR)  # the parent died before prctl took effect


def _emit(obj: dict[str, object]) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj))
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Convert ``SEGMENT`` into parts under ``ROOT``; argv is ``ROOT SEGMENT [PARENT_PID]``."""
    args = sys.argv[1:] if argv is None else argv
    root, segment = args[0], Path(args[1])
    _die_with_parent(int(args[2]) if len(args) > 2 else 0)
    try:
        scan = scan_segment(segment)
        if scan.problem is not None:
            _emit({"problem": scan.problem})
            return EXIT_DAMAGED
        result = convert_segment(root, scan)
    except OSError as exc:
        _emit({"error": str(exc)})
        return EXIT_OS_ERROR
    except Exception as exc:  # reported to the parent, which lists the segment as failed
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return EXIT_FAILED
    _emit(
        {
            "written": [str(p) for p in result.written],
            "skipped": [str(p) for p in result.skipped],
            "rows": result.rows,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
