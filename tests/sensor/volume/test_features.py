"""Window features: proportional split, duty cycle, regularity, flows-file parsing."""

from __future__ import annotations

import io

import pytest

from sensor.errors import InputError
from sensor.volume.features import (
    FEATURES,
    IDX,
    BaseAcc,
    add_span,
    flow_to_dict,
    read_flows,
    spans,
    window_features,
)

NS = 1_000_000_000
W = 300 * NS


def test_spans_split_a_flow_over_windows() -> None:
    sp = list(spans(10 * W + 200 * NS, 12 * W + 10 * NS))
    assert [k for k, _, _ in sp] == [10, 11, 12]
    assert sp[0][1] == 10 * W + 200 * NS and sp[1][1] == 11 * W and sp[2][2] == 12 * W + 10 * NS


def test_features_rates_and_duty() -> None:
    acc = BaseAcc()
    k = 100
    for i in range(10):  # a query every 30 s, 2 s each, 3000 bytes up, 6000 down
        a = k * W + i * 30 * NS
        acc.add_flow_start(a)
        add_span(acc, k, a, a + 2 * NS, 1.0, 10, 3000, 6000)
    f = window_features([acc], 300, 1)
    assert len(f) == len(FEATURES)
    assert f[IDX["flows_per_min"]] == pytest.approx(2.0)
    assert f[IDX["bytes_client_to_server_per_min"]] == pytest.approx(6000.0)
    assert f[IDX["bytes_ratio_client_to_server_over_server_to_client"]] == pytest.approx(0.5)
    assert f[IDX["flow_start_interval_cv"]] == pytest.approx(0.0)  # machine-regular
    assert f[IDX["duty_cycle_fraction"]] == pytest.approx(10 / 30)
    assert f[IDX["bytes_client_to_server_per_flow_mean"]] == pytest.approx(3000.0)
    assert f[IDX["bytes_client_to_server_per_flow_std"]] == pytest.approx(0.0, abs=1e-6)


def test_empty_window_is_finite() -> None:
    f = window_features([BaseAcc()], 3600, 1)
    assert all(v == v for v in f) and f[IDX["flow_start_interval_cv"]] == 1.0


def test_read_flows_roundtrip_and_errors() -> None:
    d = flow_to_dict("10.0.0.1", "openai-api", 5, 9, 1, 2, 300, 400, True)
    import json

    rows = list(read_flows(io.StringIO(json.dumps(d) + "\n\n"), "f"))
    assert rows[0].client_ip == "10.0.0.1" and rows[0].sanctioned and rows[0].last_ns == 9
    with pytest.raises(InputError, match="f:1: not JSON"):
        list(read_flows(io.StringIO("{nope\n"), "f"))
    with pytest.raises(InputError, match="cannot train"):
        list(read_flows(io.StringIO('{"schema": "shadowai.finding/v1"}\n'), "f"))
    bad = dict(d, last_ns=1)
    with pytest.raises(InputError, match="last_ns < first_ns"):
        list(read_flows(io.StringIO(json.dumps(bad)), "f"))
