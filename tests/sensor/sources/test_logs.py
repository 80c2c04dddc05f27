"""Common log-record helpers: times, ids, DNS answer chains, Host parsing."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as hst

from sensor.sources.logs import (
    dns_answers,
    epoch_text_ns,
    flow_id_of,
    host_and_port,
    iso_ns,
    seconds_ns,
)


def test_flow_id_is_stable_unsigned_64_bit() -> None:
    assert flow_id_of("CHhAvVGS1DHFjwGM9") == flow_id_of("CHhAvVGS1DHFjwGM9")
    assert flow_id_of("CHhAvVGS1DHFjwGM9") != flow_id_of("CHhAvVGS1DHFjwGM8")
    assert all(0 <= flow_id_of(f"C{i}") < 2**64 for i in range(100))
    assert flow_id_of("1234") == int.from_bytes(
        __import__("hashlib").blake2b(b"1234", digest_size=8).digest(), "big")


@pytest.mark.parametrize(("text", "ns"), [
    ("2018-03-24T17:15:20.865716Z", 1521911720_865716000),
    ("2016-06-08T20:01:52.875791+0000", calendar.timegm((2016, 6, 8, 20, 1, 52)) * 10**9
     + 875791000),
    ("2016-06-08T22:01:52.875791+02:00", calendar.timegm((2016, 6, 8, 20, 1, 52)) * 10**9
     + 875791000),
    ("2016-06-08T20:01:52Z", calendar.timegm((2016, 6, 8, 20, 1, 52)) * 10**9),
    ("2016-06-08T20:01:52.123456789Z", calendar.timegm((2016, 6, 8, 20, 1, 52)) * 10**9
     + 123456789),
])
def test_iso_ns(text: str, ns: int) -> None:
    assert iso_ns(text) == ns


@pytest.mark.parametrize("bad", ["", "yesterday", "2016-06-08T20:01:52+1", "2016-13-08T20:01:52Z"])
def test_iso_ns_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        iso_ns(bad)


@given(hst.integers(0, 4_000_000_000), hst.integers(0, 999_999))
def test_epoch_text_and_float_agree(sec: int, usec: int) -> None:
    text = f"{sec}.{usec:06d}"
    assert epoch_text_ns(text) == (sec * 10**6 + usec) * 1000 == seconds_ns(float(text))


def test_dns_answer_chain_owners() -> None:
    got = dns_answers("a.example", 1, [("b.example", 0, 30), ("c.example", 0, 30),
                                       ("192.0.2.1", 0, 5)])
    assert [(a.name, a.rtype, a.value) for a in got] == [
        ("a.example", 5, "b.example"), ("b.example", 5, "c.example"),
        ("c.example", 1, "192.0.2.1")]
    (ptr,) = dns_answers("1.2.0.192.in-addr.arpa", 12, [("Host.Example.", 0, 1)])
    assert (ptr.rtype, ptr.value) == (12, "host.example")


@pytest.mark.parametrize(("v", "want"), [
    ("Example.COM", ("example.com", None)), ("example.com:8080", ("example.com", 8080)),
    ("[2001:db8::1]:443", ("2001:db8::1", 443)), ("2001:db8::1", ("2001:db8::1", None)),
    ("", (None, None)), (None, (None, None)), ("host:notaport", ("host", None)),
])
def test_host_and_port(v: str | None, want: tuple[str | None, int | None]) -> None:
    assert host_and_port(v) == want
