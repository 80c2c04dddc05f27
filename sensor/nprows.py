"""Fixed-width rows gathered from a 1-D array at many offsets at once (record headers of
a capture, the first bytes of every packet of a batch)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

_T = TypeVar("_T", bound=np.generic)


def sliding_rows(a: npt.NDArray[_T], width: int) -> npt.NDArray[_T]:
    """Read-only view whose row ``i`` is ``a[i : i + width]`` (no copy)."""
    n = max(0, a.shape[0] - width + 1)
    step = a.strides[0]
    return as_strided(a, shape=(n, width), strides=(step, step), writeable=False)


def gather_rows(a: npt.NDArray[_T], idx: npt.NDArray[np.int64], width: int) -> npt.NDArray[_T]:
    """``a[i : i + width]`` for each ``i`` in ``idx``, as a ``(len(idx), width)`` copy.

    A contiguous ``a`` is viewed as overlapping ``width``-item records (a void
    dtype), which numpy copies row by row with one memcpy each: several times
    faster than fancy-indexing the 2-D :func:`sliding_rows` view. IndexError
    for an ``i`` past ``len(a) - width``, as with that view.
    """
    n = a.shape[0] - width + 1
    if n <= 0 or not a.flags.c_contiguous:
        return sliding_rows(a, width)[idx]
    item = a.dtype.itemsize
    recs = np.ndarray((n,), dtype=np.dtype((np.void, width * item)), buffer=a,
                      strides=(item,))
    out: npt.NDArray[_T] = recs[idx].view(a.dtype).reshape(idx.shape[0], width)
    return out
