"""The compiled JSON primitives against plain Python statements of what they accept."""

from __future__ import annotations

import itertools
import re
from typing import Any

import numba
import numpy as np
import pytest

from replay.ticks import pair_of
from tickrec.json_bytes import BAD, OK, address, at, decimal_value, lit, string

_L = lit(b'{"type":"change","side":"')


@numba.njit
def _string(data: Any, p: int, end: int) -> tuple[int, int]:
    return string(address(data), p, end)


@numba.njit
def _decimal_value(data: Any, p: int, end: int) -> tuple[int, int, int, int]:
    return decimal_value(address(data), p, end)


@numba.njit
def _at(data: Any, p: int, end: int) -> int:
    return at(address(data), p, end, _L)


def reference_string(text: bytes, p: int, end: int) -> tuple[int, int]:
    for q in range(p + 1, end):
        c = text[q]
        if c == 34:
            return q, q + 1
        if c == 92 or c < 32 or c >= 128:
            return -1, -1
    return -1, -1


def as_array(text: bytes) -> np.ndarray:
    return np.frombuffer(text, np.uint8).copy()


@pytest.mark.parametrize("special", [0x00, 0x1F, 0x20, 0x22, 0x5C, 0x7F, 0x80, 0xFF])
def test_string_stops_where_python_does(special: int) -> None:
    for length, at_k in itertools.product(range(20), range(20)):
        body = bytearray(b"abcdefghijklmnopqrstu"[:length])
        if at_k < length:
            body[at_k] = special
        for tail in (b'"', b'x"', b""):
            text = b'"' + bytes(body) + tail + b"  trailing bytes"
            for end in (len(text), 1 + length + len(tail)):
                got = _string(as_array(text), 0, end)
                assert got == reference_string(text, 0, end), (text, end)


@pytest.mark.parametrize(
    "value",
    ["0", "-0", "5.", "0.000", "1.2500", "60000.03", "-0.00000001", "123456789012345678",
     "1234567890.12345678", "0.0000000000000000001", "1.0000000000000000000000",
     "00012.5", "1e5", ".5", "-", "", "1.2.3", "12a", "1234567890123456789", "1234567",
     "12345678", "1234567.1234567", "1234567.12345678", "0.1000000", "9999999.9999999",
     "-1234567.7654321", "1.", "1.a", "1 ", "-.5", "--1", "1\\u0030", "7.0\x7f"],
)  # fmt: skip
def test_decimal_value_is_pair_of(value: str) -> None:
    """Plain decimals of at most 18 significant digits are read as pair_of reads them."""
    for tail in ("", ',"remaining":"0.5","delta":"0.5"}'):  # read by bytes, by words
        text = f'"{value}"{tail}'.encode()
        got = _decimal_value(as_array(text), 0, len(text))
        whole, _, frac = value.lstrip("-").partition(".")
        plain = re.fullmatch(r"-?[0-9]+(\.[0-9]*)?", value)
        if plain and int(whole + frac.rstrip("0")) < 10**18:
            assert got == (*pair_of(value), OK, len(value) + 2), text
        else:
            assert got == (0, 0, BAD, -1), text


def test_at_compares_every_byte() -> None:
    text = b'{"type":"change","side":"bid"'
    assert _at(as_array(text), 0, len(text)) == 25
    assert _at(as_array(text), 0, 24) == -1
    for k in range(25):
        changed = bytearray(text)
        changed[k] ^= 1
        assert _at(as_array(bytes(changed)), 0, len(text)) == -1


def test_decimal_value_random() -> None:
    rng = np.random.default_rng(7)
    for _ in range(2000):
        whole = "".join(rng.choice(list("0123456789"), rng.integers(0, 12)))
        frac = "".join(rng.choice(list("00123456789"), rng.integers(0, 12)))
        sign = "-" if rng.random() < 0.2 else ""
        test_decimal_value_is_pair_of(sign + whole + ("." + frac if rng.random() < 0.7 else ""))
