"""Raw replay throughput of ``tickrec serve`` to one local client (``--only serve``).

The server (:class:`replay.serve.Server`) serves the synthetic Gemini v1 day
(:mod:`bench.synth`); a client in another process (``python -m bench.serve
URL``, the ``websockets`` sync client) reads every stored connection of the
day from ``/v1/marketdata/{symbol}``, reconnecting after each close until
the server says the recording ended (code 1000), and counts frames and
bytes from its first frame to its last. The stored rows are read once
before the client starts, as a long-running server has them.

tardis-machine's documentation gives about 700,000 messages a second from
its local cache on a desktop CPU; that figure is quoted, not measured here
(the peer needs its own cache of Tardis data, which this machine cannot
download).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.synth import DayParams, make_day

__all__ = ["ServeResult", "report", "throughput"]

#: The peer's documented figure, in messages per second.
TARDIS_MACHINE_MSGS_S = 700_000
#: The goal of issue 17, in messages per second.
TARGET_MSGS_S = 1_000_000


@dataclass(frozen=True)
class ServeResult:
    """What one client read."""

    messages: int
    bytes: int
    seconds: float
    connections: int


def throughput(changes: int, seed: int = DayParams.seed) -> ServeResult:
    """Serve the day of *changes* and read all of it from a client process."""
    from replay.serve import ServeConfig, Server

    day = make_day(DayParams(changes=changes, seed=seed))
    with Server(ServeConfig(data=day.root)) as server:
        server.server.rows.connections("gemini.v1", (day.symbol,))  # load before timing
        url = f"{server.url.ws_url}/v1/marketdata/{day.symbol.lower()}"
        child = subprocess.run(
            [sys.executable, "-m", "bench.serve", url],
            capture_output=True,
            text=True,
            check=True,
        )
    return ServeResult(**json.loads(child.stdout))


def report(result: ServeResult) -> str:
    """The figures as lines of text, with ratios to the goal and to the peer's figure."""
    rate = result.messages / result.seconds
    return "\n".join(
        [
            f"tickrec serve -> one client: {result.messages:,} messages, "
            f"{result.bytes / 1e6:,.1f} MB, {result.connections} connections, "
            f"{result.seconds:.2f} s",
            f"  {rate:,.0f} msgs/s, {result.bytes / 1e6 / result.seconds:,.1f} MB/s",
            f"  {rate / TARGET_MSGS_S:.2f}x the 1 M msgs/s goal; "
            f"{rate / TARDIS_MACHINE_MSGS_S:.2f}x tardis-machine's documented 700 k msgs/s "
            "(quoted, not measured here)",
        ]
    )


def _client(url: str) -> ServeResult:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    messages = size = connections = 0
    first = last = 0.0
    while True:
        connections += 1
        with connect(url, compression=None, max_size=None) as ws:
            try:
                while True:
                    frame = ws.recv(decode=False)
                    if not messages:
                        first = time.perf_counter()
                    messages += 1
                    size += len(frame)
            except ConnectionClosed as closed:
                last = time.perf_counter()
                code = closed.rcvd.code if closed.rcvd is not None else None
        if code == 1000:
            return ServeResult(messages, size, last - first, connections)


if __name__ == "__main__":
    print(json.dumps(_client(sys.argv[1]).__dict__))
