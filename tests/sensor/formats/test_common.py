"""Shared helpers: JSON encoding (orjson or stdlib), time conversion, MITRE table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sensor.errors import InputError
from sensor.formats import FORMATS, check_format, render
from sensor.formats.common import TECHNIQUES, TITLES, dumps, ts_ms
from tests.sensor.formats._samples import TYPES, sample


def test_dumps_round_trips_and_handles_big_ints() -> None:
    doc = {"a": "é\u2028", "n": 2**70, "l": [1, None, True]}
    assert json.loads(dumps(doc)) == doc


@pytest.mark.parametrize("s", ["2026-11-26T20:35:00.123456Z", "1999-12-31T23:59:59.999999Z",
                               "2026-11-26T20:35:00+02:00"])
def test_ts_ms(s: str) -> None:
    want = int(datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC).timestamp()
               * 1000)
    assert ts_ms(s) == want
    assert ts_ms(None) is None


def test_every_type_has_a_title_and_technique() -> None:
    assert set(TYPES) == set(TITLES) == set(TECHNIQUES)


def test_render_every_format() -> None:
    f = sample(1)
    for fmt in FORMATS:
        out = render(fmt, f)
        assert out is not None
        if fmt != "cef":
            json.loads(out)
    assert render("cef", {"ip": "10.0.0.1"}, "asset") is None
    with pytest.raises(InputError):
        check_format("xml")
