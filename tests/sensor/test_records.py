"""sensor.records.slot_builder: the fast constructors the decoders use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from sensor.records import DnsAnswer, Observation, TlsClientHello, slot_builder


def test_builds_the_same_record_as_the_class() -> None:
    build = slot_builder(DnsAnswer)
    assert build is not DnsAnswer
    a = build("api.openai.com", 1, 60, "1.2.3.4", ("5.6.7.8",))
    b = DnsAnswer("api.openai.com", 1, 60, "1.2.3.4", ("5.6.7.8",))
    assert a == b and hash(a) == hash(b) and type(a) is DnsAnswer
    kw = build(name="x", rtype=5, ttl_s=1, value="y", hint_ips=())
    assert kw == DnsAnswer("x", 5, 1, "y", ())


def test_every_field_is_set_and_the_record_stays_frozen() -> None:
    build = slot_builder(Observation)
    names = [f.name for f in dataclasses.fields(Observation)]
    o = build(*range(len(names)))
    assert [getattr(o, n) for n in names] == list(range(len(names)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.kind = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        build(*range(len(names) - 1))  # every field is required


def test_field_order_follows_the_class() -> None:
    build = slot_builder(TlsClientHello)
    fields = [f.name for f in dataclasses.fields(TlsClientHello)]
    ch = build(**{f: i for i, f in enumerate(fields)})
    assert ch == TlsClientHello(*range(len(fields)))


def test_records_with_post_init_or_non_init_fields_use_the_class() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    @dataclass(frozen=True, slots=True)
    class Derived:
        x: int
        y: int = dataclasses.field(init=False, default=0)

    assert slot_builder(Checked) is Checked
    assert slot_builder(Derived) is Derived
