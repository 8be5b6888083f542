"""Raw replay throughput of ``tickrec serve`` to one local client (``--only serve``).

The server (:class:`replay.serve.Server`) serves the synthetic Gemini v1 day
(:mod:`bench.synth`); a client in another process reads every stored
connection of the day from ``/v1/marketdata/{symbol}``, reconnecting after
each close until the server says the recording ended (code 1000), and
counts frames and bytes from its first frame to its last. Two clients, one
after the other:

- ``python``: ``python -m bench.serve URL``, the ``websockets`` sync client,
  what a Python bot reads with;
- ``node``: ``bench/node/serve_client.js``, the ``ws`` package under node
  (as tardis-machine's own clients are), fast enough that the server is
  what is measured; skipped with the reason when node or ``npm ci`` is missing.

Each client gets a server of its own; the stored rows are read, and their
frames built, before it starts, as a long-running server has them.

tardis-machine's documentation gives about 700,000 messages a second from
its local cache on a desktop CPU; that figure is quoted, not measured here
(the peer needs its own cache of Tardis data, which this machine cannot
download).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.synth import DayParams, make_day

__all__ = ["ServeResult", "report", "throughput"]

NODE_CLIENT = Path(__file__).with_name("node") / "serve_client.js"

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


def _node() -> list[str] | str:
    """The node client's command, or why it cannot run."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    if not (NODE_CLIENT.parent / "node_modules" / "ws").is_dir():
        return f"the ws package is missing: run npm ci in {NODE_CLIENT.parent}"
    return [node, str(NODE_CLIENT)]


def throughput(changes: int, seed: int = DayParams.seed) -> dict[str, ServeResult | str]:
    """Serve the day of *changes* and read all of it from each client process in turn."""
    from replay.serve import ServeConfig, Server

    day = make_day(DayParams(changes=changes, seed=seed))
    clients: dict[str, list[str] | str] = {
        "python": [sys.executable, "-m", "bench.serve"],
        "node": _node(),
    }
    out: dict[str, ServeResult | str] = {}
    for name, command in clients.items():
        if isinstance(command, str):
            out[name] = command
            continue
        with Server(ServeConfig(data=day.root)) as server:  # each client from the start
            for conn in server.server.rows["gemini"].connections("gemini.v1", (day.symbol,)):
                conn.frames  # noqa: B018 (built before timing, as a running server has them)
            url = f"{server.url.ws_url}/v1/marketdata/{day.symbol.lower()}"
            child = subprocess.run(
                [*command, url], capture_output=True, text=True, check=True, timeout=1800
            )
        out[name] = ServeResult(**json.loads(child.stdout))
    return out


def report(results: dict[str, ServeResult | str]) -> str:
    """The figures as lines of text, with ratios to the goal and to the peer's figure."""
    lines = []
    for name, result in results.items():
        if isinstance(result, str):
            lines.append(f"tickrec serve -> one {name} client: skipped: {result}")
            continue
        rate = result.messages / result.seconds
        lines += [
            f"tickrec serve -> one {name} client: {result.messages:,} messages, "
            f"{result.bytes / 1e6:,.1f} MB, {result.connections} connections, "
            f"{result.seconds:.2f} s",
            f"  {rate:,.0f} msgs/s, {result.bytes / 1e6 / result.seconds:,.1f} MB/s; "
            f"{rate / TARGET_MSGS_S:.2f}x the 1 M msgs/s goal, "
            f"{rate / TARDIS_MACHINE_MSGS_S:.2f}x tardis-machine's documented 700 k msgs/s "
            "(quoted, not measured here)",
        ]
    return "\n".join(lines)


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
