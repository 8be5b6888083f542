"""The simulator's market core: pure, exact, deterministic, never crossed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tickrec.errors import UsageError
from tickrec.sim import FaultConfig, SimConfig
from tickrec.sim.faults import FrameFaults, RestFaults, malform
from tickrec.sim.market import MIN_LEVELS, Change, Event, Market, Trade, format_fixed, spec_for


def _market(seed: int = 7, now: int = 0) -> Market:
    return Market([spec_for("BTCUSD"), spec_for("ETHUSD")], seed, 50, now)


def _timeless(event: Event) -> tuple[object, ...]:
    items = tuple(replace(i, time_ns=0) if isinstance(i, Trade) else i for i in event.items)
    return (event.symbol, event.event_id, items)


def test_same_seed_same_flow_whatever_the_times() -> None:
    a, b = _market(now=0), _market(now=10**18)
    flow_a = [_timeless(e) for e in a.genesis] + [_timeless(a.step(i)) for i in range(5000)]
    flow_b = [_timeless(e) for e in b.genesis] + [
        _timeless(b.step(10**18 + 7 * i)) for i in range(5000)
    ]
    assert flow_a == flow_b


def test_other_seed_other_flow() -> None:
    a, b = _market(seed=1), _market(seed=2)
    assert [_timeless(a.step(0)) for _ in range(50)] != [_timeless(b.step(0)) for _ in range(50)]


def test_book_stays_valid_and_matches_its_changes() -> None:
    market = _market()
    mirror: dict[tuple[str, str, int], int] = {}
    for event in market.genesis:
        for c in event.changes:
            mirror[(event.symbol, c.side, c.price)] = c.remaining
    reasons: set[str] = set()
    last_id = max(e.event_id for e in market.genesis)
    for i in range(20000):
        event = market.step(i)
        assert event.event_id > last_id
        last_id = event.event_id
        for c in event.changes:
            key = (event.symbol, c.side, c.price)
            # remaining is absolute and delta is exactly the change
            # (docs/venues/gemini.md section 1).
            assert mirror.get(key, 0) + c.delta == c.remaining >= 0
            mirror[key] = c.remaining
            reasons.add(c.reason)
        for t in event.trades:
            assert t.amount > 0 and t.tid >= event.event_id
        book = market.books[event.symbol]
        assert book.count("bid") >= MIN_LEVELS and book.count("ask") >= MIN_LEVELS
        best_bid, best_ask = book.best("bid"), book.best("ask")
        assert best_bid is not None and best_ask is not None and best_bid < best_ask
    assert reasons == {"place", "cancel", "trade"}
    for symbol, book in market.books.items():
        for side in ("bid", "ask"):
            live = {
                p: s for (sym, sd, p), s in mirror.items() if sym == symbol and sd == side and s
            }
            assert dict(book.levels(side)) == live


def test_trade_is_followed_by_its_change() -> None:
    market = _market()
    seen = 0
    for i in range(5000):
        items = market.step(i).items
        for k, item in enumerate(items):
            if isinstance(item, Trade):
                seen += 1
                after = items[k + 1]
                assert isinstance(after, Change)
                assert (after.side, after.price, -after.delta, after.reason) == (
                    item.maker_side,
                    item.price,
                    item.amount,
                    "trade",
                )
    assert seen > 100


@pytest.mark.parametrize(
    ("units", "decimals", "strip", "text"),
    [
        (651320, 2, False, "6513.20"),
        (5, 2, False, "0.05"),
        (100000000, 8, True, "1"),
        (2441407, 8, True, "0.02441407"),
        (20000000, 8, True, "0.2"),
        (-132100000, 8, True, "-1.321"),
        (0, 8, True, "0"),
        (0, 2, False, "0.00"),
    ],
)
def test_format_fixed(units: int, decimals: int, strip: bool, text: str) -> None:
    assert format_fixed(units, decimals, strip) == text


def test_specs() -> None:
    btc = spec_for("btcusd")
    assert (btc.symbol, btc.base, btc.quote, btc.price(btc.start_price)) == (
        "BTCUSD",
        "BTC",
        "USD",
        "60000.00",
    )
    assert (btc.tick_size, btc.quote_increment) == (1e-8, 0.01)
    assert spec_for("ETHUSD").price(spec_for("ETHUSD").start_price) == "3000.00"
    assert spec_for("DOGEUSD").base == "DOGE"
    with pytest.raises(ValueError, match="symbol"):
        spec_for("../etc")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::", "8.8.8.8"])
def test_config_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(UsageError, match="host"):
        SimConfig(host=host)


def test_config_normalizes() -> None:
    config = SimConfig(host="localhost", symbols=("btcusd", " ETHUSD", "btcusd"))
    assert (config.host, config.symbols) == ("127.0.0.1", ("BTCUSD", "ETHUSD"))
    assert SimConfig(host="127.0.0.5").host == "127.0.0.5"
    assert SimConfig(host="::1").host == "::1"
    for bad in ({"rate": 0}, {"symbols": ()}, {"symbols": ("x",)}, {"port": 70000}):
        with pytest.raises(UsageError):
            SimConfig(**bad)
    for bad_faults in ({"drop": 1.5}, {"stall_for": 1.0}, {"abrupt": True}, {"rest_slow": 0.5}):
        with pytest.raises(UsageError):
            FaultConfig(**bad_faults)


def test_fault_choices_are_seeded() -> None:
    config = FaultConfig(drop=0.2, malformed=0.1, rest_429=0.3, rest_500=0.2)
    frames = [f'{{"n":{i}}}' for i in range(1000)]
    first = FrameFaults(config, 5, 1).apply(frames)
    assert first == FrameFaults(config, 5, 1).apply(frames)
    assert first != FrameFaults(config, 5, 2).apply(frames)
    sent, injected = first
    assert len(sent) + sum(f.kind == "drop" for f in injected) == len(frames)
    assert 100 < sum(f.kind == "drop" for f in injected) < 300
    a, b = RestFaults(config, 5), RestFaults(config, 5)
    picks = [a.pick() for _ in range(200)]
    assert picks == [b.pick() for _ in range(200)]
    assert set(picks) == {"429", "500", None}
    assert malform('{"type":"heartbeat","socket_sequence":3}') == '{"type":"heartbeat",'
