"""Measure how many websocket messages per second the simulator sustains on loopback.

Starts a simulator in this process with a high event rate, connects client
processes (v1 on both symbols, and v2 on both) that count every frame for a
fixed time, and prints the total received per second::

    python bench/sim_throughput.py --rate 30000 --clients 4 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time

from websockets.asyncio.client import connect

from tickrec.sim import SimConfig, Simulator


async def _count(url: str, subscribe: str | None, seconds: float) -> int:
    count = 0
    async with connect(url, max_queue=None, compression=None) as ws:
        if subscribe:
            await ws.send(subscribe)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            except TimeoutError:
                break
            count += 1
    return count


def _client(url: str, subscribe: str | None, seconds: float, out: mp.Queue[int]) -> None:
    out.put(asyncio.run(_count(url, subscribe, seconds)))


def main() -> None:
    """Run the benchmark and print messages per second."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=30000, help="engine events per second")
    parser.add_argument("--clients", type=int, default=4, help="client connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time")
    args = parser.parse_args()
    v2 = json.dumps(
        {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}]}
    )
    with Simulator(SimConfig(rate=args.rate, seed=1)) as sim:
        routes: list[tuple[str, str | None]] = [
            (f"{sim.ws_url}/v1/marketdata/btcusd", None),
            (f"{sim.ws_url}/v1/marketdata/ethusd", None),
            (f"{sim.ws_url}/v2/marketdata", v2),
        ]
        out: mp.Queue[int] = mp.Queue()
        procs = [
            mp.Process(target=_client, args=(*routes[i % len(routes)], args.seconds, out))
            for i in range(args.clients)
        ]
        start = sim.stats
        t0 = time.monotonic()
        for p in procs:
            p.start()
        counts = [out.get() for _ in procs]
        elapsed = time.monotonic() - t0
        for p in procs:
            p.join()
        end = sim.stats
    received = sum(counts)
    print(
        f"rate={args.rate:.0f} events/s, {args.clients} clients, {args.seconds:.0f} s: "
        f"received {received} messages, {received / args.seconds:,.0f} msgs/s "
        f"(server sent {(end.messages - start.messages) / elapsed:,.0f} msgs/s, "
        f"engine {(end.events - start.events) / elapsed:,.0f} events/s)"
    )


if __name__ == "__main__":
    main()
