"""Shared fixtures: a real simulator on a loopback port, started per test.

``sim_factory(**overrides)`` starts a :class:`~tickrec.sim.Simulator` and
stops it after the test. Overrides are :class:`~tickrec.sim.SimConfig`
fields, or :class:`~tickrec.sim.FaultConfig` fields given directly
(``sim_factory(rate=5000, drop=0.1, truth_dir=tmp_path)``). Test defaults:
port 0, seed 1, 500 events/s, heartbeats every 0.5 s. ``sim`` is one such
simulator with the defaults.

``v2_root`` is a dataset holding the real Gemini v2 capture, made once per
test module (each module gets its own, so one module's cache entries never
show in another's), and :func:`sha` hashes an output file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import realdata

from recorder.record import RecordConfig, RecordResult, record
from tickrec.sim import FaultConfig, SimConfig, Simulator

SimFactory = Callable[..., Simulator]

#: The date of the real Gemini v2 capture in ``v2_root``.
V2_DATE = "2021-06-24"

_FAULT_FIELDS = {f.name for f in dataclasses.fields(FaultConfig)}
_TEST_DEFAULTS: dict[str, Any] = {"rate": 500.0, "seed": 1, "heartbeat_s": 0.5}


@pytest.fixture
def sim_factory() -> Iterator[SimFactory]:
    """A function that starts a simulator with config overrides; all are stopped at teardown."""
    started: list[Simulator] = []

    def make(**overrides: Any) -> Simulator:
        faults = {k: overrides.pop(k) for k in list(overrides) if k in _FAULT_FIELDS}
        if faults:
            overrides["faults"] = FaultConfig(**faults)
        sim = Simulator(SimConfig(**{**_TEST_DEFAULTS, **overrides}))
        started.append(sim.start())
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(sim_factory: SimFactory) -> Simulator:
    """A running simulator with the test defaults."""
    return sim_factory()


@pytest.fixture
def read_jsonl() -> Callable[[Path], list[dict[str, Any]]]:
    """A function reading a JSON-lines file (such as a truth file) into a list of dicts."""

    def read(path: Path) -> list[dict[str, Any]]:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    return read


def record_sim(sim: Simulator, tmp_path: Path, **overrides: Any) -> RecordResult:
    """Record from *sim* into ``tmp_path/data`` with fast test settings, then stop *sim*.

    Stopping flushes the simulator's truth files. Overrides are
    :class:`~recorder.record.RecordConfig` fields. A clean run leaves no journal.
    """
    settings: dict[str, Any] = {
        "symbols": ("BTCUSD", "ETHUSD"),
        "url": sim.ws_url,
        "rest_url": sim.rest_url,
        "data": str(tmp_path / "data"),
        "duration": 1.5,
        "snapshot_every": 0.0,
        "status_every": 0.0,
        "fsync_interval": 0.02,
        "connects_per_minute": 600.0,
        "backoff_base": 0.05,
        **overrides,
    }
    try:
        result = record(RecordConfig(**settings))
    finally:
        sim.stop()
    assert not (tmp_path / "data" / "journal" / result.run_id).exists()
    return result


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v2")
    realdata.import_gemini_v2(root)
    return root


def after_lead_in(day: Any) -> list[Any]:
    """The gaps of a ``replay.Day`` after its lead-in, which they must tile exactly.

    The lead-in runs from the first row to the first snapshot: ``no_connection``
    until the first connection, then ``unsynced`` (a recorded run starts with
    ``run_start``, then connects, subscribes, and gets its snapshot).
    """
    from tickrec.events import OP_VALID

    ops = day.decoded.ops
    snap = int(ops.ts[ops.op == OP_VALID][0])
    gaps = day.gap_list()
    lead = [g for g in gaps if g.kind in ("no_connection", "unsynced") and g.end <= snap]
    edges = [day.span[0]] + [x for g in lead for x in (g.start, g.end)] + [snap]
    assert all(a == b for a, b in zip(edges[::2], edges[1::2], strict=True)), lead
    return [g for g in gaps if g not in lead]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
