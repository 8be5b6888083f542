"""A stored connection replayed as a dialogue (:class:`tickrec.serving.Dialogue`): the
server's side of a route such as the current Gemini API.

The stored connection holds what the recording client sent (``ws_sent``
rows: its subscribe and book requests, pings) and what it received (``ws``
rows: the replies, then the streams). A client of ``serve`` sends its own
requests; the stored rows go out in recorded order, each unchanged:

- a stored **reply** goes out, in its recorded place, when the client sent
  the same request (the same key, as the venue reads it) as the stored one
  it answers, by the time the recording had sent it. While the connection
  is younger than :attr:`~replay.serve.ServeConfig.request_wait_s`, any
  stored request ahead matches, and the replay waits at a reply for its
  request, so a client that sends its subscriptions on open gets them in
  their recorded place; later, a reply whose request has not come is left
  out (a stored ping, a request sent by the clock). With a different request
  id the reply is the stored one with that id alone changed;
- a **stream row** goes out when the client is subscribed to its stream at
  that point (the venue keeps the subscriptions);
- any other received row (one the recorder stored as malformed) goes out.

A request that matches no stored reply still ahead is answered by the venue
at once, or, when it asks for the book, from the book the replay engine
rebuilds from the stored rows sent so far (the replay waits for it, so it
goes out where it was asked). A connection replayed from ``--from`` on
starts its stream once the client has subscribed: the stored opening
replies are behind ``--from``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tickrec.serving import BookAsk, Dialogue, RowKind

__all__ = ["DialogueReplay", "StoredDialogue"]


@dataclass
class StoredDialogue:
    """One stored connection of a dialogue, read for replay.

    ``rows`` are ``(recv_ns, payload, what)`` in recorded order, the sent
    requests left out; ``what`` is ``("reply", stored request key)``,
    ``("stream", stream key)`` or ``("other", None)``. ``replies`` lists, per
    request key, ``(row of the reply, rows received before the request was
    sent)``. ``streams`` are the stream names the stored connection
    subscribed to.
    """

    rows: list[tuple[int, bytes, RowKind]]
    replies: dict[Hashable, list[tuple[int, int]]] = field(default_factory=dict)
    streams: frozenset[str] = frozenset()
    #: The index in the stored connection (sent rows included) of each of ``rows``.
    origin: list[int] = field(default_factory=list)
    #: The stored rows before ``--from``, read for their requests and not replayed.
    lead: int = 0

    @classmethod
    def build(
        cls,
        recv_ns: list[int],
        payloads: list[bytes],
        sent: list[bool],
        dialogue: Dialogue,
        lead: int = 0,
    ) -> StoredDialogue:
        """Sort out the rows of one stored connection (recorded order), as *dialogue*
        reads them; the first *lead* (before ``--from``) give their requests and
        subscribed streams only."""
        requests: dict[Any, tuple[Hashable, int]] = {}
        replies: dict[Hashable, list[tuple[int, int]]] = {}
        streams: set[str] = set()
        rows: list[tuple[int, bytes, RowKind]] = []
        origin: list[int] = []
        for i, (ns, payload, is_sent) in enumerate(zip(recv_ns, payloads, sent, strict=True)):
            if is_sent:
                if (asked := dialogue.sent_request(payload)) is not None:
                    rid, key, names = asked
                    requests[rid] = (key, len(rows))
                    streams.update(names)
                continue
            if i < lead:
                continue
            what, which = dialogue.kind(payload)
            if what == "reply":
                request = requests.get(which)
                if request is not None:
                    what, which = "reply", request[0]
                    replies.setdefault(request[0], []).append((len(rows), request[1]))
                else:
                    what, which = "other", None
            rows.append((int(ns), payload, (what, which)))
            origin.append(i)
        return cls(rows, replies, frozenset(streams), origin, lead)


class DialogueReplay:
    """One client connection of a dialogue route, replaying *stored*.

    *book* answers a book request after the stored connection's first rows
    (called off the event loop); *send* writes frames (False: the client was
    too slow); *within* counts a client message against the venue's rate
    (False: the client was closed).
    """

    def __init__(
        self,
        ws: ServerConnection,
        stored: StoredDialogue,
        dialogue: Dialogue,
        book: Callable[[int, BookAsk], bytes],
        send: Callable[[list[bytes], int], Awaitable[bool]],
        wait_s: float,
        speed: float | None,
        within: Callable[[], Awaitable[bool]],
    ) -> None:
        self.ws, self.stored, self.dialogue = ws, stored, dialogue
        self.book, self.send, self.wait_s, self.speed, self.within = (
            book,
            send,
            wait_s,
            speed,
            within,
        )
        self.pending: set[asyncio.Future[None]] = set()  # book replies being rebuilt
        self.claims: dict[int, Any] = {}  # stored reply row -> the client request it answers
        self.answer: list[bytes] = []  # replies to send at once
        self.position = 0
        self.opened = time.monotonic()
        self.arrived = asyncio.Event()
        self.left = False
        self.clock_ns = stored.rows[0][0] if stored.rows else 0

    # --- the client's requests ------------------------------------------------------

    def _receive(self, text: str | bytes) -> None:
        key, request = self.dialogue.request(text)
        if key is not None:
            # A stored reply ahead answers it if the recording had sent its request
            # by now, or (while the connection is young) at any point.
            young = time.monotonic() - self.opened < self.wait_s
            for k, sent_at in self.stored.replies.get(key, ()):
                if (
                    k >= self.position
                    and k not in self.claims
                    and (young or sent_at <= self.position)
                ):
                    self.claims[k] = request
                    return
        reply = self.dialogue.unanswered(request, self.stored.streams, self.clock_ns)
        if isinstance(reply, BookAsk):
            k = self.position
            upto = self.stored.origin[k - 1] + 1 if k else self.stored.lead
            task = asyncio.ensure_future(self._rebuilt(upto, reply))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        else:
            self.answer.append(reply)

    async def _rebuilt(self, upto: int, ask: BookAsk) -> None:
        loop = asyncio.get_running_loop()
        # Awaited first: the replay may replace self.answer meanwhile.
        reply = await loop.run_in_executor(None, self.book, upto, ask)
        self.answer.append(reply)
        self.arrived.set()

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                if not await self.within():
                    return
                self._receive(text)
                self.arrived.set()
        finally:
            self.left = True  # the client closed: nothing waits for its requests
            self.arrived.set()

    # --- the replay -------------------------------------------------------------------

    async def run(self) -> bool:
        """Replay the stored rows; False if the client left or was too slow."""
        reader = asyncio.create_task(self._read())
        try:
            return await self._replay()
        except ConnectionClosed:
            return False
        finally:
            reader.cancel()

    async def _replay(self) -> bool:
        rows = self.stored.rows
        # Opened at --from, no stored reply subscribes the client: the stream starts once
        # the client has subscribed, as a venue's does.
        while self.stored.lead and not self.dialogue.subscribed_any:
            if self.left:
                return False
            if self.answer:
                if not await self.send(self.answer, self.clock_ns):
                    return False
                self.answer = []
            self.arrived.clear()
            await self.arrived.wait()
        opened = self.opened = time.monotonic()
        t0_ns = rows[0][0] if rows else 0
        batch: list[bytes] = []
        last_ns = t0_ns
        k = 0
        while k < len(rows):
            if self.pending:  # a depth reply goes out where it was asked, not later
                if batch and not await self.send(batch, last_ns):
                    return False
                batch = []
                await asyncio.wait(list(self.pending))
            if self.answer:
                batch.extend(self.answer)
                self.answer.clear()
            recv_ns, payload, (what, key) = rows[k]
            if self.speed is not None:
                due = t0_ns + (time.monotonic() - opened) * self.speed * 1e9
                if recv_ns > due:
                    if batch and not await self.send(batch, last_ns):
                        return False
                    batch = []
                    # Short sleeps, so requests meanwhile are answered on time.
                    await asyncio.sleep(min((recv_ns - due) / 1e9 / self.speed, 0.05))
                    continue
            if what == "reply":
                if k not in self.claims:
                    left = self.wait_s - (time.monotonic() - opened)
                    if left > 0:
                        if batch and not await self.send(batch, last_ns):
                            return False
                        batch = []
                        self.arrived.clear()
                        waiter = asyncio.ensure_future(self.arrived.wait())
                        done, _ = await asyncio.wait([waiter], timeout=left)
                        if not done:
                            waiter.cancel()
                        continue
                    k += 1
                    self.position = k
                    continue
                batch.append(self.dialogue.claimed(self.claims.pop(k), payload))
            elif what == "other" or self.dialogue.wants(key):
                batch.append(payload)
            last_ns = self.clock_ns = recv_ns
            k += 1
            self.position = k
            if len(batch) >= 512:
                if not await self.send(batch, last_ns):
                    return False
                batch = []
        if self.pending:
            await asyncio.wait(list(self.pending))  # depth replies still being rebuilt
        if self.answer:
            batch.extend(self.answer)
            self.answer.clear()
        return not batch or await self.send(batch, last_ns)
