"""sensor.nprows: fixed-width rows gathered at many offsets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensor.nprows import gather_rows, sliding_rows


@given(st.binary(min_size=1, max_size=300), st.integers(1, 20), st.data())
def test_gather_rows_equals_the_sliding_view(data: bytes, width: int,
                                             draw: st.DataObject) -> None:
    a = np.frombuffer(data, dtype=np.uint8)
    n = a.shape[0] - width + 1
    if n <= 0:
        return
    idx = np.array(draw.draw(st.lists(st.integers(0, n - 1), max_size=30)), dtype=np.int64)
    got = gather_rows(a, idx, width)
    assert got.shape == (idx.shape[0], width)
    assert np.array_equal(got, sliding_rows(a, width)[idx])


def test_wider_items_and_non_contiguous_input() -> None:
    words = np.arange(20, dtype=">u4")
    assert gather_rows(words, np.array([0, 3, 15]), 5).tolist() == [
        list(range(i, i + 5)) for i in (0, 3, 15)]
    strided = np.arange(40, dtype=np.uint8)[::2]  # not contiguous: the view path
    assert gather_rows(strided, np.array([1]), 3).tolist() == [[2, 4, 6]]


def test_an_offset_past_the_last_row_is_an_index_error() -> None:
    a = np.zeros(10, dtype=np.uint8)
    with pytest.raises(IndexError):
        gather_rows(a, np.array([7]), 4)
