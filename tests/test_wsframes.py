"""The replay server's own websocket framing equals the websocket library's, at every length."""

from __future__ import annotations

import pyarrow as pa
import pytest
from websockets.frames import Frame, Opcode

from replay.wsframes import Framed, text_frames

# each side of the 7-, 16- and 64-bit length encodings
LENGTHS = (0, 1, 125, 126, 127, 65_535, 65_536, 70_000)


def _library(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


@pytest.mark.parametrize("n", LENGTHS)
def test_one_frame_as_the_library_frames_it(n: int) -> None:
    payload = bytes(48 + k % 10 for k in range(n))
    assert text_frames([payload]) == _library(payload)
    assert bytes(Framed([payload]).span(0, 1)) == _library(payload)


def test_spans_of_a_connection_from_arrow_or_bytes() -> None:
    payloads = [bytes([65 + k % 26]) * n for k, n in enumerate((*LENGTHS, 3, 200, 0))]
    # a slice of a bigger array, as a stored connection is of its partition's rows
    column = pa.array([b"skipped", *payloads], pa.binary()).slice(1)
    for framed in (Framed(payloads), Framed(column)):
        assert bytes(framed.span(0, len(payloads))) == b"".join(map(_library, payloads))
        for i in range(len(payloads)):
            for j in range(i, len(payloads) + 1):
                assert bytes(framed.span(i, j)) == text_frames(payloads[i:j])
