"""Incoming websocket frames: bytes from the server in, whole messages out (RFC 6455 section 5).

websocket-client opens each connection (handshake, RFC 6455 section 4) and
sends on it, but its frame reader costs about two dozen Python calls and
three ``recv`` calls per frame: at a steady 1,000 frames/s that was most of
the recorder's CPU time. :class:`FrameReader` does the same job for the
receiving side in a few lines per frame, with no I/O of its own: the
connection reads the socket in chunks and feeds them in, so one ``recv``
brings a small frame or many.
"""

from __future__ import annotations

from websocket import ABNF, WebSocketProtocolException

__all__ = ["CONTROL_OPCODES", "FrameReader"]

#: Opcodes of control frames (RFC 6455 section 5.5), never fragmented.
CONTROL_OPCODES = frozenset({ABNF.OPCODE_CLOSE, ABNF.OPCODE_PING, ABNF.OPCODE_PONG})
_TEXT = ABNF.OPCODE_TEXT
_WHOLE_TEXT = 0x80 | _TEXT  # first byte of an unfragmented text frame (FIN set)


class FrameReader:
    """Splits what a server sends into ``(opcode, payload)`` messages.

    Text and binary messages come out whole, their fragments joined
    (section 5.4); control frames (close, ping, pong) come out as they
    arrive, also between the fragments of a message (section 5.5). A frame
    that breaks the protocol raises websocket-client's
    ``WebSocketProtocolException``, as its own reader would.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # received, not yet a whole frame
        self._size = 0
        self._need = 2  # bytes the next frame needs before it can be read further
        self._fragments: list[bytes] = []
        self._fragmented = 0  # opcode of the message being reassembled

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Take the next bytes from the socket; return the messages they complete, in order."""
        self._pending.append(data)
        self._size += len(data)
        if self._size < self._need:
            return []  # a large frame still arriving: join its pieces once, when whole
        buf = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while True:
            if end - pos < 2:
                need = 2
                break
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise WebSocketProtocolException("frame with RSV bits set; no extension agreed")
            if b1 & 0x80:
                # Section 5.1: a server must not mask the frames it sends.
                raise WebSocketProtocolException("masked frame from the server")
            n, at = b1, pos + 2  # the mask bit is clear: b1 is the length
            if n >= 126:  # section 5.2: a 16-bit or 64-bit extended length follows
                width = 2 if n == 126 else 8
                if end - at < width:
                    need = 2 + width
                    break
                if n == 126:
                    n = buf[at] << 8 | buf[at + 1]
                else:
                    n = int.from_bytes(buf[at : at + 8], "big")
                at += width
            if end - at < n:
                need = at - pos + n
                break
            if b0 == _WHOLE_TEXT and not self._fragments:
                out.append((_TEXT, buf[at : at + n]))  # the usual frame, read without a call
            else:
                self._frame(b0 & 0x80, b0 & 0x0F, buf[at : at + n], out)
            pos = at + n
        rest = buf[pos:]
        self._pending = [rest] if rest else []
        self._size, self._need = len(rest), need
        return out

    def _frame(self, fin: int, opcode: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        if opcode in CONTROL_OPCODES:
            if not fin or len(payload) > 125:  # section 5.5
                raise WebSocketProtocolException("fragmented or oversized control frame")
            out.append((opcode, payload))
        elif opcode == ABNF.OPCODE_CONT:
            if not self._fragments:
                raise WebSocketProtocolException("continuation frame outside a message")
            self._fragments.append(payload)
            if fin:
                out.append((self._fragmented, b"".join(self._fragments)))
                self._fragments = []
        elif opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
            if self._fragments:
                raise WebSocketProtocolException("new message before the last one ended")
            if fin:
                out.append((opcode, payload))
            else:
                self._fragments, self._fragmented = [payload], opcode
        else:
            raise WebSocketProtocolException(f"reserved opcode {opcode:#x}")
