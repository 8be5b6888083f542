"""Streamed HTTP answers on ``tickrec serve``'s websockets server.

The websockets library answers a plain HTTP request with one reply whose
body is whole, from inside the opening handshake, and it bounds the whole
handshake by its open timeout (10 s). An NDJSON answer over a long range
is neither: it can be gigabytes, and it can take longer than that to
compute. So:

- :class:`Connection` bounds only the wait for the request by the open
  timeout; answering it may take as long as it needs;
- :func:`send_chunked` writes the answer straight to the connection's
  transport with ``Transfer-Encoding: chunked``, chunk by chunk as they are
  made, under the transport's flow control. A client that reads nothing
  for the send timeout is dropped with a logged reason, as on the
  websocket routes. The connection is then closed, so websockets sends no
  reply of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import AsyncGenerator
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

__all__ = ["Connection", "connection_type", "send_chunked"]

log = logging.getLogger("tickrec.serve")


class Connection(ServerConnection):
    """A server connection whose open timeout covers the wait for the request only.

    Pass ``open_timeout=None`` to ``serve``, and :func:`connection_type` as
    ``create_connection``.
    """

    open_timeout_s = 10.0

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """Wait for the request (at most the open timeout), then answer it."""
        await asyncio.wait(
            [self.request_rcvd, self.connection_lost_waiter],
            timeout=self.open_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self.request is None and not self.connection_lost_waiter.done():
            raise TimeoutError(f"no request within {self.open_timeout_s:g} s")
        await super().handshake(*args, **kwargs)


def connection_type(open_timeout_s: float) -> type[Connection]:
    """:class:`Connection` with this open timeout."""
    return type("Connection", (Connection,), {"open_timeout_s": open_timeout_s})


async def send_chunked(
    connection: ServerConnection,
    content_type: str,
    chunks: AsyncGenerator[bytes, None],
    send_timeout_s: float,
) -> Response:
    """Answer 200 with the body *chunks*, sent as they come; close the connection after.

    The reply returned is never sent (the connection is closed by then): it
    is what ``process_request`` returns. *chunks* is closed however the
    answer ends, so a client that leaves stops its making.
    """
    transport = connection.transport
    transport.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" % content_type.encode()
    )
    complete = False
    try:
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if transport.is_closing():
                    break  # the client left
                if chunk:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                    async with asyncio.timeout(send_timeout_s):
                        await connection.drain()
            else:
                transport.write(b"0\r\n\r\n")
                complete = True
    except TimeoutError:
        log.warning("dropping an HTTP client that read nothing for %.0f s", send_timeout_s)
    except ConnectionError:
        pass  # the client left
    except Exception:
        log.exception("an HTTP answer failed part way; its body is cut short")
    if complete:
        transport.close()  # sends what is buffered first
    else:
        transport.abort()  # a cut chunked body tells the client it is incomplete
    lost = asyncio.shield(connection.connection_lost_waiter)
    await asyncio.wait([lost], timeout=send_timeout_s)
    if not lost.done():
        log.warning("dropping an HTTP client that read nothing for %.0f s", send_timeout_s)
        transport.abort()
        await lost
    return connection.respond(http.HTTPStatus.OK, "")
