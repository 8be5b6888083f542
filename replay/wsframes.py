"""Websocket text frames built straight from stored payloads, for the replay server.

A frame a server sends is its header (``FIN`` and the text opcode, then the
payload length in 7, 16 or 64 bits; RFC 6455 section 5.2, unmasked, no
extension) followed by the payload. :class:`Framed` builds the frames of a
whole stored connection at once, column-wise in Arrow, so a batch of them is
one slice of one buffer, written to the socket in one call; framing each
message through the websocket library instead costs microseconds apiece.
:func:`text_frames` frames a short list of payloads made on the way (replies).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Framed", "header", "text_frames"]

_TEXT = 0x81  # FIN, opcode 1 (text)
_SHORT = [bytes((_TEXT, n)) for n in range(126)]


def header(n: int) -> bytes:
    """The header of a text frame of *n* payload bytes."""
    if n < 126:
        return _SHORT[n]
    if n < 1 << 16:
        return bytes((_TEXT, 126)) + n.to_bytes(2, "big")
    return bytes((_TEXT, 127)) + n.to_bytes(8, "big")


def text_frames(payloads: Sequence[bytes]) -> bytes:
    """The text frames of *payloads*, one after the other, as the bytes to send."""
    parts: list[bytes] = []
    for p in payloads:
        parts += (header(len(p)), p)
    return b"".join(parts)


def _headers(lengths: npt.NDArray[np.int64]) -> pa.Array:
    """The frame headers of payloads of *lengths*, as a binary array."""
    size = np.where(lengths < 126, 2, np.where(lengths < 1 << 16, 4, 10))
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(size, out=offsets[1:])
    data = np.zeros(int(offsets[-1]), np.uint8)
    at = offsets[:-1]
    data[at] = _TEXT
    data[at + 1] = np.where(size == 2, lengths, np.where(size == 4, 126, 127))
    for k, shift in enumerate(range(56, -8, -8)):  # the 64-bit length, big-endian
        big = size == 10
        data[at[big] + 2 + k] = (lengths[big] >> shift) & 0xFF
    mid = size == 4
    data[at[mid] + 2] = lengths[mid] >> 8
    data[at[mid] + 3] = lengths[mid] & 0xFF
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.large_binary(), len(lengths), buffers)


class Framed:
    """The text frames of a sequence of payloads: frame ``k`` is
    ``data[offsets[k]:offsets[k + 1]]``."""

    def __init__(self, payloads: pa.Array | Sequence[bytes]) -> None:
        if isinstance(payloads, pa.Array):
            body = payloads.cast(pa.large_binary())
            if body.offset:
                body = pa.concat_arrays([body])  # buffers that start at the first payload
        else:
            body = pa.array(payloads, pa.large_binary())
        lengths = np.diff(np.frombuffer(body.buffers()[1], np.int64)[: len(body) + 1])
        empty = pa.scalar(b"", pa.large_binary())
        framed = pc.binary_join_element_wise(_headers(lengths), body, empty)
        self.offsets = np.frombuffer(framed.buffers()[1], np.int64)[: len(body) + 1]
        data = framed.buffers()[2]
        self.data = memoryview(b"" if data is None else data)

    def span(self, i: int, j: int) -> memoryview:
        """The frames ``i`` to ``j - 1``, as one buffer."""
        return self.data[int(self.offsets[i]) : int(self.offsets[j])]
