"""The recorder's event rows: names and payloads (``source = "event"``).

Every event payload is a JSON object with an ``"event"`` key naming it, and
details next to it. The names, and what the replayer may conclude from them:

==================  ==========================================================
``run_start``       a recorder run began (conn_id 0; run settings)
``reconnect``       a connection attempt is about to be made (attempt, delay)
``connect``         a websocket is open (url)
``disconnect``      a websocket ended: ``code``/``reason`` of the close frame,
                    or ``code`` null and ``why`` for an abort, error or stale
``error``           a connection could not be made or failed (``error``)
``gap``             v1 ``socket_sequence`` broke: ``expected``/``got``; a
                    reconnect follows (gemini.md section 1)
``stale``           nothing arrived for ``silent_s`` seconds; a reconnect follows
``malformed``       the message with ``seq`` could not be read (``problem``);
                    it is stored raw all the same
``rest_error``      a REST snapshot request failed (``status``/``error``);
                    streaming is not affected
``disk_error``      journal writes failed from ``since_ns`` to ``resumed_ns``
``journal_loss``    recovery found a damaged journal tail (``bytes_lost``,
                    ``start_ns``..``end_ns``: the span that may be missing)
``shutdown``        the run is stopping (``why``)
==================  ==========================================================

Run-level events (``run_start``, ``shutdown``, ``disk_error``,
``journal_loss``) and REST rows carry ``conn_id`` 0; websocket connections
are numbered from 1.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["RUN_CONN_ID", "event_payload"]

#: ``conn_id`` of rows that belong to the run rather than to one websocket.
RUN_CONN_ID = 0


def event_payload(event: str, **detail: Any) -> str:
    """The JSON text of an event row."""
    return orjson.dumps({"event": event, **detail}).decode()
