"""The websocket frame reader against frames built by websocket-client, fed in every split."""

from __future__ import annotations

import pytest
from websocket import ABNF, WebSocketProtocolException

from recorder.frames import FrameReader


def _frame(opcode: int, payload: bytes, fin: int = 1, mask: int = 0) -> bytes:
    frame = ABNF(fin, 0, 0, 0, opcode, mask, payload)
    return frame.format()


def _feed_in_pieces(stream: bytes, size: int) -> list[tuple[int, bytes]]:
    reader = FrameReader()
    out = []
    for at in range(0, len(stream), size):
        out += reader.feed(stream[at : at + size])
    return out


def test_messages_come_out_whole_whatever_the_chunks() -> None:
    big = b"x" * 70_000  # a 64-bit length
    mid = b'{"type":"update"}' * 20  # a 16-bit length
    stream = b"".join(
        (
            _frame(ABNF.OPCODE_TEXT, b"hello"),
            _frame(ABNF.OPCODE_TEXT, mid),
            _frame(ABNF.OPCODE_BINARY, big),
            _frame(ABNF.OPCODE_TEXT, b"part one, ", fin=0),
            _frame(ABNF.OPCODE_PING, b"are you there"),
            _frame(ABNF.OPCODE_CONT, b"part two, ", fin=0),
            _frame(ABNF.OPCODE_CONT, b"end", fin=1),
            _frame(ABNF.OPCODE_TEXT, b""),
            _frame(ABNF.OPCODE_CLOSE, (1000).to_bytes(2, "big") + b"bye"),
        )
    )
    want = [
        (ABNF.OPCODE_TEXT, b"hello"),
        (ABNF.OPCODE_TEXT, mid),
        (ABNF.OPCODE_BINARY, big),
        (ABNF.OPCODE_PING, b"are you there"),
        (ABNF.OPCODE_TEXT, b"part one, part two, end"),
        (ABNF.OPCODE_TEXT, b""),
        (ABNF.OPCODE_CLOSE, (1000).to_bytes(2, "big") + b"bye"),
    ]
    for size in (1, 2, 3, 7, 100, 4096, 65536, len(stream)):
        assert _feed_in_pieces(stream, size) == want, size


@pytest.mark.parametrize(
    "stream",
    [
        _frame(ABNF.OPCODE_TEXT, b"masked", mask=1),
        _frame(ABNF.OPCODE_CONT, b"no message started"),
        _frame(ABNF.OPCODE_TEXT, b"a", fin=0) + _frame(ABNF.OPCODE_TEXT, b"b"),
        _frame(ABNF.OPCODE_PING, b"p", fin=0),
        bytes([0x83, 0]),  # reserved opcode 3
        bytes([0xC1, 0]),  # RSV1 set
    ],
)
def test_protocol_errors_are_refused(stream: bytes) -> None:
    with pytest.raises(WebSocketProtocolException):
        FrameReader().feed(stream)
