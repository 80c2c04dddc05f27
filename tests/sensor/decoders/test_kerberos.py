"""Kerberos decoder: crafted DER, TCP framing, fuzzing, and the corpus peers.

Peers: Zeek's kerberos.log ``client`` (built by Zeek from the AS-REQ cname and
realm, or for TGS from the reply's / error's cname and crealm), Suricata's
krb5 EVE events (cname/realm/sname per message type), Arkime's krb5 session
fields.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decoders.kerberos import (
    AS_REP,
    AS_REQ,
    KRB_ERROR,
    TGS_REP,
    TGS_REQ,
    KerberosMessage,
    parse_kerberos,
    parse_kerberos_tcp,
)
from sensor.errors import DecodeError, NeedMoreData
from tests.sensor.identity.pcapwalk import CORPUS, corpus_file, walk

# -- a tiny DER encoder for crafting messages ----------------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + body


def ctx(n: int, body: bytes) -> bytes:
    return tlv(0xA0 + n, body)


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def gstr(s: str | bytes) -> bytes:
    return tlv(0x1B, s.encode() if isinstance(s, str) else s)


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def principal(name_type: int, *parts: str | bytes) -> bytes:
    return seq(ctx(0, integer(name_type)), ctx(1, seq(*(gstr(p) for p in parts))))


def kdc_req(app: int, cname: tuple[str, ...] | None, realm: str, sname: tuple[str, ...],
            etypes: tuple[int, ...] = (18, 23)) -> bytes:
    body = [ctx(0, tlv(0x03, b"\x00\x40\x81\x00\x10"))]
    if cname is not None:
        body.append(ctx(1, principal(1, *cname)))
    body += [ctx(2, gstr(realm)), ctx(3, principal(2, *sname)),
             ctx(5, tlv(0x18, b"20370913024805Z")), ctx(7, integer(12345)),
             ctx(8, seq(*(integer(e) for e in etypes)))]
    req = seq(ctx(1, integer(5)), ctx(2, integer(app)), ctx(3, seq()), ctx(4, seq(*body)))
    return tlv(0x60 + app, req)


def enc(etype: int) -> bytes:
    return seq(ctx(0, integer(etype)), ctx(2, tlv(0x04, b"\xaa" * 40)))


def kdc_rep(app: int, cname: tuple[str, ...], crealm: str, realm: str,
            sname: tuple[str, ...]) -> bytes:
    ticket = tlv(0x61, seq(ctx(0, integer(5)), ctx(1, gstr(realm)),
                           ctx(2, principal(2, *sname)), ctx(3, enc(18))))
    rep = seq(ctx(0, integer(5)), ctx(1, integer(app)), ctx(3, gstr(crealm)),
              ctx(4, principal(1, *cname)), ctx(5, ticket), ctx(6, enc(23)))
    return tlv(0x60 + app, rep)


def krb_error(code: int, realm: str, sname: tuple[str, ...], cname: tuple[str, ...] | None = None,
              crealm: str | None = None, text: str | None = None) -> bytes:
    f = [ctx(0, integer(5)), ctx(1, integer(30)), ctx(4, tlv(0x18, b"20240101000000Z")),
         ctx(5, integer(0)), ctx(6, integer(code))]
    if crealm is not None:
        f.append(ctx(7, gstr(crealm)))
    if cname is not None:
        f.append(ctx(8, principal(1, *cname)))
    f += [ctx(9, gstr(realm)), ctx(10, principal(2, *sname))]
    if text is not None:
        f.append(ctx(11, gstr(text)))
    return tlv(0x7E, seq(*f))


def framed(*msgs: bytes) -> bytes:
    return b"".join(len(m).to_bytes(4, "big") + m for m in msgs)


AS_REQ_BYTES = kdc_req(AS_REQ, ("alice",), "CORP.EXAMPLE", ("krbtgt", "CORP.EXAMPLE"))


# -- crafted messages ------------------------------------------------------------------


def test_as_req() -> None:
    m = parse_kerberos(AS_REQ_BYTES)
    assert (m.msg_type, m.msg_type_name, m.is_request) == (AS_REQ, "AS-REQ", True)
    assert m.cname == ("alice",) and m.cname_type == 1
    assert m.principal == "alice" and m.client_realm == "CORP.EXAMPLE"
    assert m.realm == "CORP.EXAMPLE" and m.crealm is None
    assert m.service == "krbtgt/CORP.EXAMPLE"
    assert m.etypes == (18, 23)
    assert m.kdc_options == 0x40810010
    assert m.to_dict() == {"msg_type": "AS-REQ", "client": "alice",
                           "client_realm": "CORP.EXAMPLE", "service": "krbtgt/CORP.EXAMPLE",
                           "error_code": None}


def test_tgs_req_without_cname() -> None:
    m = parse_kerberos(kdc_req(TGS_REQ, None, "CORP", ("cifs", "fs1.corp")))
    assert m.msg_type_name == "TGS-REQ" and m.cname is None and m.principal is None
    assert m.client_realm == "CORP" and m.service == "cifs/fs1.corp"


def test_as_rep_and_tgs_rep() -> None:
    m = parse_kerberos(kdc_rep(AS_REP, ("Alice",), "CORP", "CORP", ("krbtgt", "CORP")))
    assert (m.msg_type_name, m.principal, m.crealm, m.client_realm) == (
        "AS-REP", "Alice", "CORP", "CORP")
    assert m.is_request is False
    assert m.service == "krbtgt/CORP" and m.ticket_etype == 18 and m.enc_etype == 23
    m = parse_kerberos(kdc_rep(TGS_REP, ("PC1$",), "CORP", "CORP", ("HTTP", "web")))
    assert (m.msg_type, m.principal, m.service) == (TGS_REP, "PC1$", "HTTP/web")


def test_krb_error() -> None:
    m = parse_kerberos(krb_error(25, "CORP", ("krbtgt", "CORP")))
    assert (m.msg_type, m.error_code, m.cname, m.crealm) == (KRB_ERROR, 25, None, None)
    assert m.realm == "CORP" and m.service == "krbtgt/CORP" and m.client_realm is None
    m = parse_kerberos(krb_error(13, "CORP", ("krbtgt", "CORP"), ("bob",), "CORP",
                                 "TICKET NOT RENEWABLE"))
    assert (m.principal, m.client_realm, m.error_text) == ("bob", "CORP", "TICKET NOT RENEWABLE")


def test_non_utf8_name_is_escaped_not_fatal() -> None:
    raw = tlv(0x6A, seq(ctx(1, integer(5)), ctx(2, integer(10)), ctx(4, seq(
        ctx(1, seq(ctx(0, integer(1)), ctx(1, seq(gstr(b"b\xffb"))))), ctx(2, gstr("R"))))))
    assert parse_kerberos(raw).principal == "b\\xffb"


def test_long_form_lengths() -> None:
    long_name = "u" * 300  # forces 2-byte lengths all the way up
    m = parse_kerberos(kdc_req(AS_REQ, (long_name,), "R", ("krbtgt", "R")))
    assert m.principal == long_name


@pytest.mark.parametrize("data", [
    b"", b"\x6a", b"\x6a\x80\x00\x00",  # empty, cut, BER indefinite length
    b"\x6a\x85\x00\x00\x00\x00\x01",  # 5-byte length field
    b"\x30\x03\x02\x01\x05",  # a SEQUENCE, not a KDC message
    b"\x6e\x03\x30\x01\x00",  # AP-REQ: not decoded here
    tlv(0x6A, seq(ctx(1, integer(5)), ctx(2, integer(12)))),  # msg-type mismatch, no body
    tlv(0x6A, seq(ctx(4, seq(ctx(1, principal(1, "a")))))),  # body without realm
    tlv(0x6B, seq(ctx(3, gstr("R")))),  # reply without cname
    tlv(0x7E, seq(ctx(9, gstr("R")))),  # error without error-code
])
def test_malformed_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_kerberos(data)


def test_too_many_name_parts() -> None:
    with pytest.raises(DecodeError):
        parse_kerberos(kdc_req(AS_REQ, tuple("abcdefghijklmnopq"), "R", ("k",)))


def test_every_truncation_raises_decode_error() -> None:
    for cut in range(len(AS_REQ_BYTES)):
        with pytest.raises(DecodeError):
            parse_kerberos(AS_REQ_BYTES[:cut])


# -- TCP framing ---------------------------------------------------------------------


def test_tcp_two_records_and_remainder() -> None:
    rep = kdc_rep(AS_REP, ("alice",), "CORP", "CORP", ("krbtgt", "CORP"))
    data = framed(AS_REQ_BYTES, rep) + b"\x00\x00"
    msgs, used = parse_kerberos_tcp(data)
    assert [m.msg_type for m in msgs] == [AS_REQ, AS_REP]
    assert used == len(data) - 2


def test_tcp_split_anywhere_needs_more_data() -> None:
    """A principal split across segments: every strict prefix asks for more."""
    data = framed(AS_REQ_BYTES)
    for cut in range(len(data)):
        with pytest.raises(NeedMoreData):
            parse_kerberos_tcp(data[:cut])
    msgs, used = parse_kerberos_tcp(data)
    assert used == len(data) and msgs[0].principal == "alice"


def test_tcp_incremental_feed_like_a_stream() -> None:
    data = framed(AS_REQ_BYTES, AS_REQ_BYTES, AS_REQ_BYTES)
    buf, got = b"", []
    for i in range(0, len(data), 7):
        buf += data[i : i + 7]
        try:
            msgs, used = parse_kerberos_tcp(buf)
        except NeedMoreData:
            continue
        got += msgs
        buf = buf[used:]
    assert [m.principal for m in got] == ["alice"] * 3 and buf == b""


@pytest.mark.parametrize("head", [b"\x80\x00\x00\x10", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00"])
def test_tcp_bad_record_length(head: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        parse_kerberos_tcp(head + b"\x00" * 16)
    assert not isinstance(e.value, NeedMoreData)


def test_tcp_bad_record_after_good_one_stops() -> None:
    data = framed(AS_REQ_BYTES) + framed(b"\x30\x00")
    msgs, used = parse_kerberos_tcp(data)
    assert len(msgs) == 1 and used == len(framed(AS_REQ_BYTES))
    with pytest.raises(DecodeError):
        parse_kerberos_tcp(data[used:])


# -- fuzzing -----------------------------------------------------------------------------

_SAMPLES = [AS_REQ_BYTES, kdc_rep(TGS_REP, ("a", "b"), "R", "R", ("s", "h")),
            krb_error(6, "R", ("krbtgt", "R"), ("x",), "R", "t")]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    for fn in (parse_kerberos, parse_kerberos_tcp):
        with contextlib.suppress(DecodeError):
            fn(data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_SAMPLES), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                                           max_size=6), st.integers(0, 2000))
def test_fuzz_mutated_messages(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, val in flips:
        data[pos % len(data)] = val
    for blob in (bytes(data), bytes(data[: cut % (len(data) + 1)])):
        try:
            m = parse_kerberos(blob)
            assert isinstance(m, KerberosMessage)
        except DecodeError:
            pass
        with contextlib.suppress(DecodeError):
            parse_kerberos_tcp(framed(blob))


# -- corpus -------------------------------------------------------------------------------



def messages(rel: str) -> Iterator[tuple[str, str, KerberosMessage]]:
    """(client ip, server ip, message) for every Kerberos message on port 88, in time order."""
    udp, streams = walk(corpus_file(rel))
    items: list[tuple[int, str, str, KerberosMessage]] = []
    for d in udp:
        if 88 in (d.sport, d.dport):
            try:
                m = parse_kerberos(d.payload)
            except DecodeError:
                continue
            cli, srv = (d.src, d.dst) if d.dport == 88 else (d.dst, d.src)
            items.append((d.ts_ns, cli, srv, m))
    for s in streams:
        if 88 in (s.sport, s.dport):
            try:
                msgs, _ = parse_kerberos_tcp(s.data())
            except DecodeError:
                continue
            cli, srv = (s.src, s.dst) if s.dport == 88 else (s.dst, s.src)
            items += [(s.first_ts_ns, cli, srv, m) for m in msgs]
    items.sort(key=lambda x: x[0])
    return ((c, sv, m) for _, c, sv, m in items)


def read_zeek(path: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def zeek_style_clients(rel: str) -> set[tuple[str, str, str]]:
    """(orig ip, request type, client) as Zeek's kerberos.log builds them.

    AS: ``cname/realm`` of the request; TGS: ``cname/crealm`` of the reply or
    error (the request carries no client name). One row per exchange: the
    reply that follows a request on the same client completes it.
    """
    out: set[tuple[str, str, str]] = set()
    pending: dict[str, str] = {}  # client ip -> "AS" | "TGS" awaiting an answer
    for cli, _srv, m in messages(rel):
        if m.msg_type == AS_REQ:
            out.add((cli, "AS", f"{m.principal or ''}/{m.realm}"))
            pending[cli] = "AS"
        elif m.msg_type == TGS_REQ:
            pending[cli] = "TGS"
        elif pending.get(cli) == "TGS" and (m.cname is not None or m.crealm is not None):
            out.add((cli, "TGS", f"{m.principal or ''}/{m.crealm or ''}"))
            del pending[cli]
        else:
            pending.pop(cli, None)
    return out


ZEEK_KRB = {  # baseline -> trace (port-88 exchanges only; AP rows come from SMB/DCE-RPC)
    "scripts.base.protocols.krb.kinit/kerberos.log": "zeek/Traces/krb/kinit.pcap",
    "scripts.base.protocols.krb.tgs/kerberos.log": "zeek/Traces/krb/auth.pcap",
    "scripts.policy.protocols.krb.ticket-logging/kerberos.log": "zeek/Traces/krb/auth.pcap",
    "scripts.base.protocols.tcp.krb-tcp-tso/kerberos.log": "zeek/Traces/krb/kerberos_tso.pcapng",
    "scripts.base.protocols.krb.krb-service-name/kerberos.log":
        "zeek/Traces/krb/optional-service-name.pcap",
    "scripts.base.protocols.krb.error-preauth-padata/kerberos.log":
        "zeek/Traces/krb/error-preauth-padata.pcap",
}


# Rows we cannot see for reasons outside the decoder (none now: kerberos_tso.pcapng's
# TGS-REQ segments, captured before segmentation offload with IPv4 total length 0,
# are read since classify takes the captured length for them). A gap that closes
# fails the test: drop the entry.
KNOWN_GAPS: dict[str, set[tuple[str, str, str]]] = {}


@pytest.mark.corpus
@pytest.mark.parametrize("baseline", sorted(ZEEK_KRB))
def test_clients_equal_zeek_kerberos_log(baseline: str) -> None:
    log = corpus_file(f"zeek/Baseline/{baseline}")
    zeek = {(r["id.orig_h"], r["request_type"], r["client"]) for r in read_zeek(log)
            if r["id.resp_p"] == "88" and r["client"] != "-"}
    ours = zeek_style_clients(ZEEK_KRB[baseline])
    gaps = KNOWN_GAPS.get(baseline, set())
    assert ours == zeek - gaps
    assert gaps <= zeek


@pytest.mark.corpus
def test_kinit_principals_match_zeek() -> None:
    """kinit.pcap: 50+ exchanges; the distinct principals equal Zeek's."""
    zeek = {r["client"] for r in read_zeek(corpus_file(
        "zeek/Baseline/scripts.base.protocols.krb.kinit/kerberos.log"))}
    ours = {c for _ip, _t, c in zeek_style_clients("zeek/Traces/krb/kinit.pcap")}
    assert ours == zeek
    assert "enterprise_principal@AD.VLADG.NET/VLADG.NET" in ours
    assert "WELLKNOWN/ANONYMOUS/VLADG.NET" in ours


_SV_TYPES = {"KRB_AS_REQ": AS_REQ, "KRB_AS_REP": AS_REP, "KRB_TGS_REQ": TGS_REQ,
             "KRB_TGS_REP": TGS_REP, "KRB_ERROR": KRB_ERROR}
SURICATA_KRB = ["bug-8278-krb5-01", "bug-8278-krb5-02", "bug-8278-krb5-03",
                "krb5-request-frag-log", "krb5-kerberoasting", "krb5-probing"]


def suricata_view(m: KerberosMessage) -> dict[str, object]:
    """Our message as Suricata's krb5 EVE fields (cname/realm are the client's)."""
    empty = "<empty>"
    realm = m.realm if m.is_request else m.crealm
    return {"krb5.msg_type": next(k for k, v in _SV_TYPES.items() if v == m.msg_type),
            "krb5.cname": m.principal if m.principal is not None else empty,
            "krb5.realm": realm if realm is not None else empty,
            "krb5.sname": m.service if m.service is not None else empty}


@pytest.mark.corpus
@pytest.mark.parametrize("test", SURICATA_KRB)
def test_suricata_krb5_events(test: str) -> None:
    spec = yaml.safe_load(corpus_file(f"suricata-verify/tests/{test}/test.yaml").read_text())
    pcap = next(p for p in (CORPUS / "suricata-verify" / "tests" / test).glob("*.pcap"))
    views = [suricata_view(m) for _c, _s, m in messages(str(pcap.relative_to(CORPUS)))]
    checked = 0
    for check in spec["checks"]:
        match = check["filter"]["match"]
        if match.get("event_type") != "krb5":
            continue
        want = {k: v for k, v in match.items() if k in (
            "krb5.msg_type", "krb5.cname", "krb5.realm", "krb5.sname")}
        n = sum(all(v.get(k) == x for k, x in want.items()) for v in views)
        assert n == check["filter"]["count"], (want, views)
        checked += 1
    assert checked


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["krb5-tcp", "krb5-udp"])
def test_arkime_krb5_fields(name: str) -> None:
    doc = json.loads(corpus_file(f"arkime/expected/{name}.test").read_text())
    want = next(s["body"]["krb5"] for s in doc["sessions3"] if "krb5" in s["body"])
    msgs = [m for _c, _s, m in messages(f"arkime/pcap/{name}.pcap")]
    assert sorted({m.principal for m in msgs if m.principal}) == want["cname"]
    assert sorted({m.realm for m in msgs if m.realm}) == want["realm"]
    assert sorted({m.service for m in msgs if m.service}) == want["sname"]
    etype_names = {17: "aes128-cts-hmac-sha1-96", 18: "aes256-cts-hmac-sha1-96",
                   16: "des3-cbc-sha1-kd", 23: "rc4-hmac", 24: "rc4-hmac-exp"}
    ours = {etype_names.get(e, str(e)) for m in msgs for e in m.etypes if e > 0}
    assert sorted(ours) == sorted(want["etype"])


@pytest.mark.corpus
@pytest.mark.parametrize("rel", ["ndpi/pcap/kerberos_fuzz.pcapng", "ndpi/pcap/kerberos.pcap",
                                 "ndpi/pcap/kerberos-login.pcap", "ndpi/pcap/kerberos-error.pcap"])
def test_ndpi_captures_decode_without_surprises(rel: str) -> None:
    """Malformed / garbled exchanges only ever raise DecodeError (messages() swallows it)."""
    list(messages(rel))
