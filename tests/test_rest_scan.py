"""The compiled ``/v1/book`` scanner reads exactly what ``orjson`` and :func:`parse_book` read.

Each reply is read both ways; where the scanner accepts it, the levels must
be the same exact pairs (:func:`replay.ticks.pair_of` of the strings), bids
first. Where it declines, the general path decides.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from replay.ticks import pair_of
from tickrec.venues.gemini.rest_book import parse_book, scan_book

LEVEL = '{"price":"%s","amount":"%s","timestamp":"1768435260"}'


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> str:
    side = lambda levels: ",".join(LEVEL % lv for lv in levels)  # noqa: E731
    return f'{{"bids":[{side(bids)}],"asks":[{side(asks)}]}}'


ACCEPTED = [
    book([("60000.14", "0.53730235"), ("60000.1", "2.12")], [("60000.20", "7.7959")]),
    book([], [("1.00", "3")]),
    book([("5", "0.00000001")], []),
    book([], []),
    '{"asks":[{"amount":"1.5","price":"2.25"}],"bids":[{"price":"2","amount":"1"}]}',
    ' { "bids" : [ { "price" : "1.10" , "amount" : "2" } ] , "asks" : [ ] , "x" : 3 } ',
    '{"bids":[{"price":"-1.5","amount":"0","other":null}],"asks":[],"ok":true}',
]

DECLINED = [
    '{"result":"error","reason":"InvalidSymbol","message":"no such symbol"}',
    '{"bids":[]}',
    '{"bids":[{"price":1.5,"amount":"1"}],"asks":[]}',
    '{"bids":[{"price":"1e-8","amount":"1"}],"asks":[]}',
    '{"bids":[{"price":"1","amount":"1","price":"2"}],"asks":[]}',
    '{"bids":[{"price":"1","amount":"1"}],"asks":[],"bids":[]}',
    '{"bids":[{"price":"1","amount":"1","x":{"y":1}}],"asks":[]}',
    '{"bids":[{"price":"1\\u0030","amount":"1"}],"asks":[]}',
    '{"bids":[{"price":"1"}],"asks":[]}',
    '{"bids":[],"asks":[]} x',
    "[]",
]


def general(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int] | None:
    levels = parse_book(orjson.loads(text))
    if levels is None:
        return None
    bids, asks = levels
    flat = [lv for side in (bids, asks) for lv in side]
    return [pair_of(p) for p, _ in flat], [pair_of(a) for _, a in flat], len(bids)


def scanned(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int] | None:
    data = np.frombuffer(text.encode(), np.uint8)
    got = scan_book(data, 0, len(data))
    if got is None:
        return None
    px = list(zip(got.px.tolist(), got.px_dec.tolist(), strict=True))
    sz = list(zip(got.sz.tolist(), got.sz_dec.tolist(), strict=True))
    return px, sz, got.n_bids


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_replies_match_the_general_path(text: str) -> None:
    got = scanned(text)
    assert got is not None
    assert got == general(text)


@pytest.mark.parametrize("text", DECLINED)
def test_everything_else_is_declined(text: str) -> None:
    assert scanned(text) is None


def test_a_reply_inside_a_larger_buffer() -> None:
    text = book([("2", "1")], [("3", "4")])
    data = np.frombuffer(("xx" + text + "yy").encode(), np.uint8)
    got = scan_book(data, 2, 2 + len(text))
    assert got is not None
    assert got.px.tolist() == [2, 3] and got.sz.tolist() == [1, 4] and got.n_bids == 1
