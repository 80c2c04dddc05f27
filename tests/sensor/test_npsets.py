from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sensor.npsets import member

U64 = st.integers(0, 2**64 - 1)


@given(st.lists(U64, max_size=50), st.lists(U64, max_size=20))
def test_member_equals_isin(values, keys):
    v = np.array(values, dtype=np.uint64)
    k = np.array(keys, dtype=np.uint64)
    assert member(v, k).tolist() == np.isin(v, k).tolist()
