"""The simulated exchange's market: one L2 order book per symbol and a seeded order flow.

This is the pure core of the simulator. It does no I/O and never reads the
clock: every call that creates an event takes the event time as an argument.
Given the same symbols, depth and seed, :class:`Market` produces the same
sequence of events (sides, prices, sizes, reasons, ids) whatever times are
passed in.

Numbers are exact: prices are integer multiples of the symbol's price
increment (Gemini's ``quote_increment``) and sizes integer multiples of its
size increment (Gemini's ``tick_size``), see docs/venues/gemini.md section 4. They become
decimal strings only at the wire, through :meth:`SymbolSpec.price` and
:meth:`SymbolSpec.size`.

Order flow, one engine event per :meth:`Market.step`:

- *place*: a resting order near the touch adds size to a level (sometimes a
  new best price inside the spread);
- *cancel*: part or all of a level goes away, more often near the touch;
- *aggressive*: an order takes liquidity through one or more levels of the
  opposite side, producing one trade and one ``trade`` change per level, and
  may rest its remainder at its limit price.

Each side keeps at least :data:`MIN_LEVELS` levels, so the book never empties
and is never crossed.
"""

from __future__ import annotations

import bisect
import random
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_SYMBOLS",
    "FIRST_UPDATE_ID",
    "MIN_LEVELS",
    "TRADE_HISTORY",
    "Book",
    "Change",
    "Event",
    "Market",
    "Reason",
    "Side",
    "SymbolSpec",
    "Trade",
    "format_fixed",
    "spec_for",
]

Side = Literal["bid", "ask"]
Reason = Literal["initial", "place", "cancel", "trade"]

#: Fewest levels a side keeps: cancels and sweeps stop there, placements refill.
MIN_LEVELS = 10
#: Trades kept per symbol for REST ``/v1/trades`` and the v2 snapshot.
TRADE_HISTORY = 2000
#: First engine event id; Gemini's ids are large and only ever increase
#: (docs/venues/gemini.md section 1).
FIRST_EVENT_ID = 9_100_000_000
#: Default first update id of each symbol's book, as in docs/venues/gemini.md section 3.2's example.
FIRST_UPDATE_ID = 88_000_000


def format_fixed(units: int, decimals: int, strip: bool) -> str:
    """Decimal string of ``units * 10**-decimals``; *strip* drops trailing zeros.

    Gemini prints prices with every decimal of the price increment
    (``"6513.20"``) and sizes without trailing zeros (``"0.2"``, ``"1"``), as in
    the real captures.
    """
    sign = "-" if units < 0 else ""
    digits = str(abs(units))
    if decimals == 0:
        return sign + digits
    digits = digits.rjust(decimals + 1, "0")
    whole, frac = digits[:-decimals], digits[-decimals:]
    if strip:
        frac = frac.rstrip("0")
        if not frac:
            return sign + whole
    return f"{sign}{whole}.{frac}"


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One tradable symbol and its fixed-point scales.

    ``price_decimals`` is the number of decimals of ``quote_increment`` (2 for
    0.01); ``size_decimals`` those of ``tick_size`` (8 for 1e-8).
    ``start_price`` is in price units (60000.00 is ``6_000_000``) and
    ``typical_size`` in size units.
    """

    symbol: str
    base: str
    quote: str
    price_decimals: int
    size_decimals: int
    start_price: int
    typical_size: int
    min_order_size: str

    def price(self, units: int) -> str:
        """Wire form of a price, with every decimal of the increment."""
        return format_fixed(units, self.price_decimals, strip=False)

    def size(self, units: int) -> str:
        """Wire form of a size or signed delta, without trailing zeros."""
        return format_fixed(units, self.size_decimals, strip=True)

    @property
    def quote_increment(self) -> float:
        """Price increment, as the JSON number Gemini sends (docs/venues/gemini.md section 4)."""
        return float(10.0**-self.price_decimals)

    @property
    def tick_size(self) -> float:
        """Size increment, as the JSON number Gemini sends (docs/venues/gemini.md section 4)."""
        return float(10.0**-self.size_decimals)


def _spec(
    symbol: str, base: str, price: str, size_decimals: int, typical: str, min_size: str
) -> SymbolSpec:
    whole, _, frac = price.partition(".")
    typical_whole, _, typical_frac = typical.partition(".")
    return SymbolSpec(
        symbol=symbol,
        base=base,
        quote=symbol[len(base) :],
        price_decimals=len(frac),
        size_decimals=size_decimals,
        start_price=int(whole + frac),
        typical_size=int(typical_whole + typical_frac.ljust(size_decimals, "0")),
        min_order_size=min_size,
    )


_KNOWN = {
    s.symbol: s
    for s in (
        # Scales as in Gemini's symbol details (docs/venues/gemini.md section 4)
        # and the real capture.
        _spec("BTCUSD", "BTC", "60000.00", 8, "0.25", "0.00001"),
        _spec("ETHUSD", "ETH", "3000.00", 6, "2.5", "0.001"),
        _spec("SOLUSD", "SOL", "150.000", 6, "20", "0.01"),
        _spec("ETHBTC", "ETH", "0.05000", 6, "2.5", "0.001"),
    )
}

#: The symbols the simulator lists by default.
DEFAULT_SYMBOLS = ("BTCUSD", "ETHUSD")

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{3,12}(USDT|USDC|USD|BTC|ETH|EUR|GBP|SGD|DAI|GUSD)$")


def spec_for(symbol: str) -> SymbolSpec:
    """The spec of *symbol* (any case): a known one, or a generic one priced at 100.00.

    Raises :class:`ValueError` if the name does not look like a Gemini symbol
    (a base code followed by a quote currency such as ``USD``).
    """
    name = symbol.strip().upper()
    if name in _KNOWN:
        return _KNOWN[name]
    m = _SYMBOL_RE.match(name)
    if not m:
        raise ValueError(
            f"symbol {symbol!r}: expected a base code and a quote currency, like BTCUSD"
        )
    return _spec(name, name[: m.start(1)], "100.00", 6, "10", "0.001")


@dataclass(frozen=True, slots=True)
class Change:
    """A price level set to an absolute size (``remaining``); ``delta`` is the signed change."""

    side: Side
    price: int
    remaining: int
    delta: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class Trade:
    """A fill against a resting order on ``maker_side``."""

    tid: int
    price: int
    amount: int
    maker_side: Side
    time_ns: int

    @property
    def taker_side(self) -> Literal["buy", "sell"]:
        """The aggressor's side, as v2 and REST spell it (docs/venues/gemini.md section 5)."""
        return "buy" if self.maker_side == "ask" else "sell"


@dataclass(frozen=True, slots=True)
class Event:
    """One engine event: what happened to one symbol's book, in engine order.

    ``items`` holds the trades and changes in the order Gemini v1 lists them:
    each trade is followed by the change it caused (docs/venues/gemini.md section 1).
    ``update_id`` numbers the events of one symbol's book without holes: the
    current API's ``U``/``u`` (docs/venues/gemini.md section 3.4).
    """

    symbol: str
    event_id: int
    time_ns: int
    items: tuple[Change | Trade, ...]
    update_id: int

    @property
    def changes(self) -> list[Change]:
        """The level changes of this event."""
        return [i for i in self.items if isinstance(i, Change)]

    @property
    def trades(self) -> list[Trade]:
        """The trades of this event."""
        return [i for i in self.items if isinstance(i, Trade)]


class Book:
    """One symbol's L2 book: size by price on each side, with sorted prices for the touch."""

    __slots__ = ("_prices", "_sizes")

    def __init__(self) -> None:
        self._sizes: dict[Side, dict[int, int]] = {"bid": {}, "ask": {}}
        # Ascending on both sides: the best bid is last, the best ask first.
        self._prices: dict[Side, list[int]] = {"bid": [], "ask": []}

    def set(self, side: Side, price: int, size: int) -> None:
        """Set a level to an absolute size; zero removes it."""
        sizes, prices = self._sizes[side], self._prices[side]
        if size:
            if price not in sizes:
                bisect.insort(prices, price)
            sizes[price] = size
        elif price in sizes:
            del sizes[price]
            del prices[bisect.bisect_left(prices, price)]

    def size(self, side: Side, price: int) -> int:
        """Size at a level, 0 if there is none."""
        return self._sizes[side].get(price, 0)

    def count(self, side: Side) -> int:
        """Number of levels on a side."""
        return len(self._prices[side])

    def best(self, side: Side) -> int | None:
        """Best price of a side, or None if it is empty."""
        prices = self._prices[side]
        if not prices:
            return None
        return prices[-1] if side == "bid" else prices[0]

    def price_at(self, side: Side, rank: int) -> int:
        """Price of the level *rank* steps from the touch (0 is the best)."""
        prices = self._prices[side]
        return prices[-1 - rank] if side == "bid" else prices[rank]

    def levels(self, side: Side, depth: int = 0) -> list[tuple[int, int]]:
        """``(price, size)`` pairs best first; *depth* 0 means the whole side."""
        prices = self._prices[side]
        ordered: Iterable[int] = reversed(prices) if side == "bid" else prices
        sizes = self._sizes[side]
        out = [(p, sizes[p]) for p in ordered]
        return out[:depth] if depth > 0 else out


class Market:
    """Books for a set of symbols, moved by a seeded random order flow.

    The constructor builds each book with *depth* levels per side around the
    symbol's start price; :attr:`genesis` holds those levels as one event per
    symbol with ``initial`` changes, stamped *now_ns*, so a listener can see
    every change ever applied.

    Each symbol's events also get consecutive update ids from
    *update_id_base* (the genesis event takes the base itself);
    :attr:`update_ids` holds the last one of each symbol.
    """

    def __init__(
        self,
        specs: Sequence[SymbolSpec],
        seed: int,
        depth: int,
        now_ns: int,
        update_id_base: int = FIRST_UPDATE_ID,
    ) -> None:
        if not specs:
            raise ValueError("specs: at least one symbol is needed")
        if depth < MIN_LEVELS:
            raise ValueError(f"depth: must be at least {MIN_LEVELS}")
        self.specs = {s.symbol: s for s in specs}
        self.depth = depth
        self._symbols = [s.symbol for s in specs]
        self._rng = random.Random(seed)
        self._next_id = FIRST_EVENT_ID
        self.books = {s: Book() for s in self._symbols}
        self.trades: dict[str, deque[Trade]] = {
            s: deque(maxlen=TRADE_HISTORY) for s in self._symbols
        }
        self.last_event_id = 0
        self.update_ids = {s: update_id_base - 1 for s in self._symbols}
        self.genesis = tuple(self._build(self.specs[s], now_ns) for s in self._symbols)

    def _new_id(self, count: int = 1) -> int:
        first = self._next_id
        self._next_id += count
        self.last_event_id = first + count - 1
        return first

    def _event(
        self, symbol: str, event_id: int, now_ns: int, items: tuple[Change | Trade, ...]
    ) -> Event:
        self.update_ids[symbol] += 1
        return Event(symbol, event_id, now_ns, items, self.update_ids[symbol])

    def _size(self, spec: SymbolSpec) -> int:
        # Log-normal around the typical size: many small orders, a few large ones.
        return max(1, int(spec.typical_size * self._rng.lognormvariate(-0.5, 1.0)))

    def _build(self, spec: SymbolSpec, now_ns: int) -> Event:
        book = self.books[spec.symbol]
        items: list[Change | Trade] = []
        sides: tuple[tuple[Side, int], ...] = (("bid", -1), ("ask", 1))
        for side, sign in sides:
            price = spec.start_price
            for _ in range(self.depth):
                price += sign * self._rng.randint(1, 4)
                size = self._size(spec)
                book.set(side, price, size)
                items.append(Change(side, price, size, size, "initial"))
        return self._event(spec.symbol, self._new_id(), now_ns, tuple(items))

    def step(self, now_ns: int) -> Event:
        """Apply one random engine event at time *now_ns* and return it."""
        rng = self._rng
        symbol = self._symbols[rng.randrange(len(self._symbols))]
        spec, book = self.specs[symbol], self.books[symbol]
        side: Side = "bid" if rng.random() < 0.5 else "ask"
        r = rng.random()
        if book.count(side) < self.depth // 2 or r < 0.5:
            return self._place(spec, book, side, now_ns)
        if r < 0.85:
            return self._cancel(spec, book, side, now_ns)
        return self._take(spec, book, side, now_ns)

    def steps(self, count: int, now_ns: int) -> list[Event]:
        """Apply *count* events, all stamped *now_ns*."""
        return [self.step(now_ns) for _ in range(count)]

    def _place(self, spec: SymbolSpec, book: Book, side: Side, now_ns: int) -> Event:
        rng = self._rng
        bid, ask = book.best("bid"), book.best("ask")
        assert bid is not None and ask is not None  # MIN_LEVELS keeps both sides
        if ask - bid > 1 and rng.random() < 0.15:
            # A new best price inside the spread.
            price = rng.randint(bid + 1, ask - 1)
        else:
            # Short of depth, refill behind the back of the side; else near the touch.
            far = book.count(side) < self.depth
            offset = int(rng.expovariate(1 / (3 * self.depth if far else 8)))
            price = bid - offset if side == "bid" else ask + offset
        size = self._size(spec)
        remaining = book.size(side, price) + size
        book.set(side, price, remaining)
        return self._event(
            spec.symbol, self._new_id(), now_ns, (Change(side, price, remaining, size, "place"),)
        )

    def _cancel(self, spec: SymbolSpec, book: Book, side: Side, now_ns: int) -> Event:
        rng = self._rng
        count = book.count(side)
        # Cancels cluster near the touch; when the side is deeper than asked, trim the back.
        if count > self.depth * 3 // 2:
            rank = count - 1 - int(rng.expovariate(1 / 5)) % count
        else:
            rank = min(count - 1, int(rng.expovariate(1 / 10)))
        price = book.price_at(side, rank)
        size = book.size(side, price)
        if count <= MIN_LEVELS or (size > 1 and rng.random() < 0.4):
            cut = rng.randint(1, max(1, size - 1))
        else:
            cut = size
        book.set(side, price, size - cut)
        return self._event(
            spec.symbol, self._new_id(), now_ns, (Change(side, price, size - cut, -cut, "cancel"),)
        )

    def _take(self, spec: SymbolSpec, book: Book, maker: Side, now_ns: int) -> Event:
        rng = self._rng
        # Usually part of the best level; sometimes a sweep through a few levels.
        reach = min(book.count(maker) - MIN_LEVELS, 1 + int(rng.expovariate(1 / 0.7)))
        if reach < 1:
            return self._place(spec, book, "ask" if maker == "bid" else "bid", now_ns)
        levels = book.levels(maker, reach)
        amount = sum(size for _, size in levels[:-1]) + rng.randint(1, levels[-1][1])
        swept = amount == sum(size for _, size in levels)
        rest = self._size(spec) if swept and rng.random() < 0.3 else 0
        first_id = self._new_id(len(levels))
        items: list[Change | Trade] = []
        left = amount
        for i, (price, size) in enumerate(levels):
            qty = min(size, left)
            left -= qty
            trade = Trade(first_id + i, price, qty, maker, now_ns)
            self.trades[spec.symbol].append(trade)
            book.set(maker, price, size - qty)
            items.append(trade)
            items.append(Change(maker, price, size - qty, -qty, "trade"))
        if rest:
            # The remainder rests at its limit price, the last level it took out.
            taker: Side = "ask" if maker == "bid" else "bid"
            price = levels[-1][0]
            book.set(taker, price, rest)
            items.append(Change(taker, price, rest, rest, "place"))
        return self._event(spec.symbol, first_id, now_ns, tuple(items))
