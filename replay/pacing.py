"""Sending stored frames to one client, as fast as it reads or paced by their receive times.

:func:`send_paced` is what every streaming route of ``tickrec serve`` uses:
frames go out in batches, each batch followed by one wait for the socket to
drain, so a client that reads slowly slows the sender (backpressure) and a
client that reads nothing is dropped by the caller's write function. With
``speed`` set, a frame is not sent before its receive time, counted from the
first frame's, comes due on a clock running ``speed`` times faster than real
time (1: real time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

__all__ = ["BATCH", "send_paced"]

#: Frames written before waiting for the socket to drain.
BATCH = 512

#: Writes frames ``[i, j)``; False when the client was dropped.
Write = Callable[[int, int], Awaitable[bool]]


async def send_paced(
    recv_ns: npt.NDArray[np.int64],
    speed: float | None,
    write: Write,
    clock: tuple[int, float] | None = None,
) -> bool:
    """Write all frames stamped *recv_ns* (non-decreasing) through *write*; False if dropped.

    *clock*, ``(receive time, time.monotonic())``, is when the replay was at that
    receive time, for a replay sent in several calls; by default, the first frame's
    receive time is now.
    """
    n = len(recv_ns)
    if n == 0:
        return True
    t0_ns, t0 = clock if clock is not None else (int(recv_ns[0]), time.monotonic())
    i = 0
    while i < n:
        j = min(i + BATCH, n)
        if speed is not None:
            now_ns = t0_ns + int((time.monotonic() - t0) * speed * 1e9)
            if recv_ns[i] > now_ns:
                await asyncio.sleep((int(recv_ns[i]) - now_ns) / 1e9 / speed)
                continue
            j = min(j, int(np.searchsorted(recv_ns, now_ns, side="right")))
        if not await write(i, j):
            return False
        i = j
    return True
