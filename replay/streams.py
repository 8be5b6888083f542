"""The replay stream of each wire protocol, loaded from the venue registry.

:mod:`replay.decode` asks here for the stream class of a connection's
``protocol`` and for a REST protocol's book reader; both come from the
venue's :class:`~tickrec.venues.base.Wire` (:data:`tickrec.venues.WIRES`),
so the engine names no venue. Modules are imported on first use: a numba
kernel module must not load before :mod:`replay.kernels` has chosen its
cache directory.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from tickrec.errors import DatasetError
from tickrec.events import VenueStream
from tickrec.venues import WIRES

__all__ = ["CONFLATED", "DECODERS", "SYNCS", "book_reader", "decoder_versions", "stream_class"]

#: Protocols whose diffs are conflated per interval (:attr:`~tickrec.venues.base.Wire.conflated`).
CONFLATED = frozenset(w.name for w in WIRES.values() if w.conflated)

#: The websocket protocol that each REST protocol's sync snapshots go to
#: (:attr:`~tickrec.venues.base.Wire.syncs`).
SYNCS = {name: w.syncs for name, w in WIRES.items() if w.syncs is not None}

#: The decoder module of each protocol (its stream's or its book reader's), by protocol.
DECODERS = {name: w.decoder for name, w in sorted(WIRES.items()) if w.decoder is not None}


@functools.cache
def stream_class(protocol: str) -> type[VenueStream]:
    """The replay stream class of websocket *protocol*, or a clear error."""
    wire = WIRES.get(protocol)
    if wire is None or wire.stream is None:
        known = ", ".join(sorted(w.name for w in WIRES.values() if w.stream))
        raise DatasetError(f"no replay decoder for protocol {protocol!r} (known: {known})")
    module, _, name = wire.stream.partition(":")
    cls: type[VenueStream] = getattr(importlib.import_module(module), name)
    return cls


@functools.cache
def book_reader(protocol: str) -> Any | None:
    """The REST book reader module of *protocol* (``parse_book``, ``scan_book``), or None."""
    wire = WIRES.get(protocol)
    return None if wire is None or wire.book is None else importlib.import_module(wire.book)


def decoder_versions() -> dict[str, int]:
    """The ``DECODER_VERSION`` of each protocol's decoder module, by protocol."""
    modules: dict[str, ModuleType] = {p: importlib.import_module(m) for p, m in DECODERS.items()}
    return {protocol: int(module.DECODER_VERSION) for protocol, module in modules.items()}
