"""A read-only picture of the book at one instant, and the events of a replay.

:class:`BookView` keeps the exact integers (ticks and units) and offers float
views for convenience; floats are for display and analysis only
(docs/architecture.md section 2.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BookView", "Event"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class Event(NamedTuple):
    """One step of a replay, in replay order.

    ``kind`` is ``"book"`` (a message changed the book), ``"trade"``, or a
    marker: a recorder event name (``connect``, ``disconnect``, ``error``,
    ...), ``"reset"`` (a new connection; the book was cleared) or ``"lost"``
    (the connection ended). For trades, ``price``/``size`` are floats and
    ``side`` is the taker side (+1 buy, -1 sell, 0 unknown); otherwise they
    are ``nan``/``0``. ``detail`` carries the marker's text.
    """

    ts: int
    kind: str
    price: float = float("nan")
    size: float = float("nan")
    side: int = 0
    detail: str = ""


@dataclass(frozen=True)
class BookView:
    """The book at ``ts`` (ns since the epoch, UTC), levels best first.

    ``bid_px``/``ask_px`` are prices in ticks of ``10**-price_scale``;
    ``bid_sz``/``ask_sz`` sizes in units of ``10**-size_scale``. ``valid``
    says whether the book was known to be right at that moment (see
    :mod:`replay.gaps`).
    """

    ts: int
    valid: bool
    bid_px: I64
    bid_sz: I64
    ask_px: I64
    ask_sz: I64
    price_scale: int
    size_scale: int

    def _f(self, values: I64, scale: int) -> F64:
        return values / float(10**scale)

    @property
    def bids(self) -> F64:
        """``(n, 2)`` float64 array of ``(price, size)``, best first."""
        return np.column_stack(
            [self._f(self.bid_px, self.price_scale), self._f(self.bid_sz, self.size_scale)]
        )

    @property
    def asks(self) -> F64:
        """``(n, 2)`` float64 array of ``(price, size)``, best first."""
        return np.column_stack(
            [self._f(self.ask_px, self.price_scale), self._f(self.ask_sz, self.size_scale)]
        )

    @property
    def best_bid(self) -> float | None:
        """Best bid price as a float, or None if there are no bids."""
        return float(self.bid_px[0]) / 10**self.price_scale if len(self.bid_px) else None

    @property
    def best_ask(self) -> float | None:
        """Best ask price as a float, or None if there are no asks."""
        return float(self.ask_px[0]) / 10**self.price_scale if len(self.ask_px) else None

    @property
    def mid(self) -> float | None:
        """Mid price, or None unless both sides have levels."""
        if not len(self.bid_px) or not len(self.ask_px):
            return None
        return float(self.bid_px[0] + self.ask_px[0]) / 2 / 10**self.price_scale

    def to_frame(self) -> pd.DataFrame:
        """Levels as a DataFrame: ``side`` (bid/ask), ``level``, ``price``, ``size`` (float64)."""
        import pandas as pd

        parts = []
        for side, arr in (("bid", self.bids), ("ask", self.asks)):
            parts.append(
                pd.DataFrame(
                    {
                        "side": side,
                        "level": np.arange(len(arr)),
                        "price": arr[:, 0],
                        "size": arr[:, 1],
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)
