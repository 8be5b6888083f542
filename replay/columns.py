"""numpy columns to Arrow arrays and back, without pyarrow's pandas check.

``pa.array`` and ``Array.to_numpy`` first import pandas to see whether they
were handed a Series. That import is half a second, a fifth of a replay from
the normalized cache, and a command-line replay to Parquet needs pandas for
nothing else; so the replayer builds and reads its columns from buffers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["from_numpy", "repeat_text", "to_numpy", "with_nulls"]


def from_numpy(
    values: npt.NDArray[Any], kind: pa.DataType, nulls: npt.NDArray[np.bool_] | None = None
) -> pa.Array:
    """*values* as an Arrow array of *kind*, null where *nulls* is set."""
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))  # Arrow packs bools into bits
    else:
        data = pa.py_buffer(np.ascontiguousarray(values))
    valid = None
    if nulls is not None and nulls.any():
        valid = pa.py_buffer(np.packbits(~nulls, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values), [valid, data])


def to_numpy(arr: pa.Array) -> npt.NDArray[Any]:
    """A column of numbers or bools without nulls as a read-only numpy array.

    Numbers are zero-copy views (through DLPack); bools are unpacked from bits.
    """
    if arr.null_count:
        raise ValueError("the column has nulls")
    out: npt.NDArray[Any]
    if pa.types.is_boolean(arr.type):
        bits = np.frombuffer(arr.buffers()[1] or b"", np.uint8)
        unpacked = np.unpackbits(bits, count=arr.offset + len(arr), bitorder="little")
        out = unpacked[arr.offset :].view(np.bool_)
    else:
        out = np.from_dlpack(arr)
    out.setflags(write=False)
    return out


def with_nulls(arr: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """An int64 column that may hold nulls: its values (0 where null) and where it is valid."""
    n, off = len(arr), arr.offset
    validity, data = arr.buffers()[:2]
    values = np.frombuffer(data, np.int64, count=n, offset=off * 8) if n else np.zeros(0, np.int64)
    if validity is None or arr.null_count == 0:
        return values.copy(), np.ones(n, np.bool_)
    bits = np.frombuffer(validity, np.uint8)
    valid = np.unpackbits(bits, count=off + n, bitorder="little")[off:].view(np.bool_)
    return np.where(valid, values, 0), valid


def repeat_text(text: str, n: int) -> pa.Array:
    """*text* *n* times as a ``large_string`` array."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)]
    )
