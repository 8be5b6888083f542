"""Exact pairs brought to one scale: :func:`replay.ticks.rescale` agrees with :func:`to_units`."""

from __future__ import annotations

import numpy as np
import pytest

from replay.ticks import INT64_MAX, pair_of, rescale, to_units
from tickrec.errors import DatasetError

# Texts that all fit at their scale, with shifts from 0 to past 18 (where only zero fits).
CASES = {
    8: ["0", "-0", "1.5", "0.00000001", "-3", "60000.01", "92233720368.54775807"],
    25: ["0", "-0.0000000000000000000000001", "0.000000000000000000000001", "5e-20"],
}


def pairs(texts: list[str], decimals_type: type = np.int32) -> tuple[np.ndarray, np.ndarray]:
    got = [pair_of(t) for t in texts]
    return np.array([m for m, _ in got], np.int64), np.array([d for _, d in got], decimals_type)


@pytest.mark.parametrize("decimals_type", [np.int32, np.int64])
@pytest.mark.parametrize("scale", sorted(CASES))
def test_rescale_is_to_units(scale: int, decimals_type: type) -> None:
    texts = CASES[scale]
    assert rescale(*pairs(texts, decimals_type), scale).tolist() == to_units(texts, scale).tolist()


def test_rescale_names_the_first_value_that_does_not_fit() -> None:
    m, d = pairs(["1", "0.5", "123456789012.5", "99999999999.5"])
    with pytest.raises(DatasetError, match=r"'123456789012\.5' does not fit a 64-bit integer"):
        rescale(m, d, 8)
    m, d = pairs(["0", "1", "0.1"])
    with pytest.raises(DatasetError, match="'1' does not fit"):
        rescale(m, d, 19)
    assert rescale(*pairs([str(INT64_MAX)]), 0).tolist() == [INT64_MAX]
    with pytest.raises(ValueError, match="more decimals than the scale"):
        rescale(*pairs(["0.01"]), 1)
