"""sensor/app.py: the collector settings a packet run uses, and their restoration."""

from __future__ import annotations

import gc

import pytest

from sensor.app import YOUNG_GC_THRESHOLD, tuned_gc


def test_tuned_gc_sets_then_restores_the_collector() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with tuned_gc():
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0  # start-up objects are out of the collector's sight
        garbage = []
        garbage.append(garbage)  # a cycle: still collected while tuned
        del garbage
        assert gc.collect() >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_tuned_gc_restores_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuned_gc(freeze=False):
        assert gc.get_freeze_count() == 0
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
