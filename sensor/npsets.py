"""Set membership for a batch column against a (usually much smaller) key set.

``np.isin`` sorts both sides on every call; with the set sorted once and
binary-searched, a 32 k batch against a few thousand keys costs a fraction.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def member(values: npt.NDArray[np.uint64], keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """``values[i] in keys`` for every i (``keys`` need not be sorted or unique)."""
    if keys.size == 0 or values.size == 0:
        return np.zeros(values.shape[0], dtype=bool)
    s = np.sort(keys)
    idx = np.searchsorted(s, values)
    idx[idx == s.size] = 0
    out: npt.NDArray[np.bool_] = s[idx] == values
    return out
