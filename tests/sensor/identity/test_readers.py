"""load_identity: every format, sniffing, overrides, bad input, corpus Zeek logs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sensor.errors import InputError
from sensor.identity import Binding, load_identity
from sensor.identity.readers import parse_time_ns
from sensor.identity.store import NS
from tests.sensor.identity.pcapwalk import corpus_file

T = 1_764_187_200  # 2025-11-26T20:00:00Z


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


ZEEK_DHCP_TSV = """#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tdhcp
#fields\tts\tuids\tclient_addr\tserver_addr\tmac\thost_name\tclient_fqdn\tdomain\trequested_addr\tassigned_addr\tlease_time\tclient_message\tserver_message\tmsg_types\tduration
#types\ttime\tset[string]\taddr\taddr\tstring\tstring\tstring\tstring\taddr\taddr\tinterval\tstring\tstring\tvector[string]\tinterval
1764187200.000000\tC1\t10.0.0.5\t10.0.0.1\t00:11:22:33:44:55\tlaptop\t-\tcorp\t10.0.0.5\t10.0.0.5\t3600.000000\t-\t-\tREQUEST,ACK\t0.01
1764187300.000000\tC2\t-\t-\t00:11:22:33:44:66\t-\t-\t-\t-\t-\t-\t-\t-\tDISCOVER\t0.0
1764187400.000000\tC3\t10.0.0.9\t-\t00:11:22:33:44:77\t-\tpc9.corp.example\t-\t-\t-\t-\t-\t-\tINFORM,ACK\t0.0
broken line
"""


def test_zeek_dhcp_tsv(tmp_path: Path) -> None:
    res = load_identity(write(tmp_path, "dhcp.log", ZEEK_DHCP_TSV))
    assert res.fmt == "zeek-dhcp" and res.skipped == 2  # the DISCOVER (no address), the junk
    assert list(res) == [
        Binding("10.0.0.5", T * NS, (T + 3600) * NS, mac="00:11:22:33:44:55",
                hostname="laptop", source="zeek-dhcp", confidence=0.9),
        Binding("10.0.0.9", (T + 200) * NS, None, mac="00:11:22:33:44:77", hostname="pc9",
                source="zeek-dhcp", confidence=0.7)]


def test_zeek_tsv_and_json_give_the_same_bindings(tmp_path: Path) -> None:
    tsv = load_identity(write(tmp_path, "dhcp.log", ZEEK_DHCP_TSV))
    fields = next(ln for ln in ZEEK_DHCP_TSV.splitlines() if ln.startswith("#fields"))
    names = fields.split("\t")[1:]
    lines = []
    for ln in ZEEK_DHCP_TSV.splitlines():
        if ln.startswith("#") or "\t" not in ln:
            continue
        row: dict[str, object] = {
            k: v for k, v in zip(names, ln.split("\t"), strict=True) if v != "-"}
        row["ts"] = float(str(row["ts"]))
        if "lease_time" in row:
            row["lease_time"] = float(str(row["lease_time"]))
        lines.append(json.dumps({"_path": "dhcp", **row}))
    js = load_identity(write(tmp_path, "dhcp.json", "\n".join(lines) + "\n"))
    assert js.fmt == "zeek-dhcp" and list(js) == list(tsv)


def test_zeek_kerberos_json_iso_times_and_nested_id(tmp_path: Path) -> None:
    rows = [
        {"_path": "kerberos", "ts": "2025-11-26T20:00:00.5Z", "id": {"orig_h": "10.0.0.7"},
         "request_type": "AS", "client": "alice/CORP.EXAMPLE", "success": True},
        {"ts": T, "id.orig_h": "10.0.0.8", "request_type": "TGS", "client": "PC8$/CORP",
         "success": True},
        {"ts": T, "id.orig_h": "10.0.0.9", "request_type": "AS", "client": "eve/CORP",
         "success": False},
        {"ts": T, "id.orig_h": "10.0.0.9", "request_type": "AS", "client": "/CORP"},
        {"ts": T, "id.orig_h": "10.0.0.10", "request_type": "AS", "client": "frank/CORP"},
    ]
    res = load_identity(write(tmp_path, "k.json", "\n".join(json.dumps(r) for r in rows)))
    assert res.fmt == "zeek-kerberos" and res.skipped == 2
    assert [(b.ip, b.user, b.hostname, b.confidence, b.start_ns) for b in res] == [
        ("10.0.0.7", "alice@CORP.EXAMPLE", None, 0.9, T * NS + NS // 2),
        ("10.0.0.8", None, "pc8", 0.9, T * NS),
        ("10.0.0.10", "frank@CORP", None, 0.6, T * NS)]


DHCPD = """# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;

lease 192.168.1.50 {
  starts 3 2025/11/26 20:00:00;
  ends 3 2025/11/26 21:00:00;
  cltt 3 2025/11/26 20:00:00;
  binding state active;
  next binding state free;
  hardware ethernet 00:aa:bb:cc:dd:ee;
  uid "\\001\\000\\252\\273\\314\\335\\356";
  client-hostname "laptop-50";
}
lease 192.168.1.51 {
  starts epoch 1764187200; # Wed Nov 26 20:00:00 2025
  ends never;
  binding state active;
  hardware ethernet 00:aa:bb:cc:dd:ef;
}
lease 192.168.1.52 {
  starts 3 2025/11/26 20:00:00;
  ends 3 2025/11/26 21:00:00;
  binding state free;
  hardware ethernet 00:aa:bb:cc:dd:f0;
}
"""


def test_dhcpd_leases(tmp_path: Path) -> None:
    res = load_identity(write(tmp_path, "dhcpd.leases", DHCPD))
    assert res.fmt == "dhcpd-leases" and res.skipped == 1  # the free lease
    assert list(res) == [
        Binding("192.168.1.50", T * NS, (T + 3600) * NS, mac="00:aa:bb:cc:dd:ee",
                hostname="laptop-50", source="dhcpd-leases", confidence=0.9),
        Binding("192.168.1.51", T * NS, None, mac="00:aa:bb:cc:dd:ef",
                source="dhcpd-leases", confidence=0.9)]


def test_dnsmasq_leases(tmp_path: Path) -> None:
    text = (f"{T} 00:11:22:33:44:55 192.168.1.20 phone 01:00:11:22:33:44:55\n"
            f"0 00:11:22:33:44:56 192.168.1.21 * *\n"
            f"duid 00:01:00:01:2a:2b:2c:2d:00:11:22:33:44:57\n"
            f"{T} 1234567 2001:db8::20 laptop6 00:01:00:01:aa\n"
            f"garbage\n")
    res = load_identity(write(tmp_path, "dnsmasq.leases", text))
    assert res.fmt == "dnsmasq-leases" and res.skipped == 1
    assert [(b.ip, b.mac, b.hostname, b.start_ns, b.end_ns) for b in res] == [
        ("192.168.1.20", "00:11:22:33:44:55", "phone", 0, T * NS),
        ("192.168.1.21", "00:11:22:33:44:56", None, 0, None),
        ("2001:db8::20", None, "laptop6", 0, T * NS)]


def winlog(event_id: int | str, ip: str, user: str, domain: str = "CORP",
           **extra: str) -> str:
    data = {"IpAddress": ip, "TargetUserName": user, "TargetDomainName": domain, **extra}
    return json.dumps({"@timestamp": "2025-11-26T20:00:00.123Z",
                       "winlog": {"event_id": event_id, "channel": "Security",
                                  "event_data": data}})


def test_winlog(tmp_path: Path) -> None:
    lines = [
        winlog(4624, "10.0.0.30", "alice", LogonType="3", WorkstationName="WS30"),
        winlog("4768", "::ffff:10.0.0.31", "bob", "CORP.EXAMPLE", Status="0x0"),
        winlog(4768, "::ffff:10.0.0.32", "carol", Status="0x18"),  # failed pre-auth
        winlog(4624, "-", "dave"),  # local logon, no address
        winlog(4624, "127.0.0.1", "erin"),
        winlog(4624, "10.0.0.33", "ANONYMOUS LOGON", "NT AUTHORITY"),
        winlog(4624, "10.0.0.34", "WS34$"),
        winlog(4634, "10.0.0.35", "frank"),  # logoff: not used
        "not json",
    ]
    res = load_identity(write(tmp_path, "security.jsonl", "\n".join(lines)))
    assert res.fmt == "winlog" and res.skipped == 6
    ts = T * NS + 123_000_000
    assert list(res) == [
        Binding("10.0.0.30", ts, None, hostname="ws30", user="CORP\\alice",
                source="winlog-4624", confidence=0.8),
        Binding("10.0.0.31", ts, None, user="CORP.EXAMPLE\\bob", source="winlog-4768",
                confidence=0.9),
        Binding("10.0.0.34", ts, None, hostname="ws34", source="winlog-4624", confidence=0.8)]


FEED_CSV = """ip,mac,user,host,start,end,confidence
10.0.0.40,00-11-22-33-44-40,alice,pc40,2025-11-26T20:00:00Z,2025-11-26T21:00:00Z,
10.0.0.41,,bob,,1764187200,,0.5
10.0.0.42,not-a-mac,carol,,,,
not-an-ip,,dave,,,,
10.0.0.43,,,,,,
10.0.0.44,,erin,,2025-11-26T21:00:00Z,2025-11-26T20:00:00Z,
"""


def test_csv_feed(tmp_path: Path) -> None:
    res = load_identity(write(tmp_path, "feed.csv", FEED_CSV))
    assert res.fmt == "csv" and res.skipped == 4
    assert list(res) == [
        Binding("10.0.0.40", T * NS, (T + 3600) * NS, mac="00:11:22:33:44:40", hostname="pc40",
                user="alice", source="feed", confidence=1.0),
        Binding("10.0.0.41", T * NS, None, user="bob", source="feed", confidence=0.5)]


def test_jsonl_feed_and_gzip(tmp_path: Path) -> None:
    body = "\n".join(json.dumps(r) for r in [
        {"ip": "10.0.0.50", "user": "gina", "start": T, "source": "vpn"},
        {"ip": "::ffff:10.0.0.51", "host": "pc51", "start": "2025-11-26 20:00:00+01:00"},
    ]).encode()
    p = tmp_path / "feed.jsonl.gz"
    p.write_bytes(gzip.compress(body))
    res = load_identity(p)
    assert res.fmt == "jsonl" and res.skipped == 0
    assert [(b.ip, b.user, b.hostname, b.source, b.start_ns) for b in res] == [
        ("10.0.0.50", "gina", None, "vpn", T * NS),
        ("10.0.0.51", None, "pc51", "feed", (T - 3600) * NS)]


def test_fmt_override(tmp_path: Path) -> None:
    p = write(tmp_path, "x.txt", "ip,user\n10.0.0.60,hank\n")
    assert load_identity(p, "csv")[0].user == "hank"
    res = load_identity(p, "dnsmasq-leases")  # forced wrong format: every line is skipped
    assert list(res) == [] and res.skipped == 2


@pytest.mark.parametrize(("content", "msg"), [
    ("", "empty identity file"),
    ("hello world\n", "not a recognised identity file"),
    ("[1, 2]\n", "not a recognised identity file"),
    ('{"foo": 1}\n', "no known identity shape"),
    ("{not json\n", "not valid JSON"),
    ("#separator \\x09\n#path\tconn\n#fields\tts\tuid\n", "neither dhcp.log nor kerberos.log"),
])
def test_bad_files_raise_one_line_input_error(tmp_path: Path, content: str, msg: str) -> None:
    with pytest.raises(InputError) as e:
        load_identity(write(tmp_path, "f", content))
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such identity file"):
        load_identity(tmp_path / "nope")
    with pytest.raises(InputError, match="unknown identity format"):
        load_identity(write(tmp_path, "f.csv", "ip\n"), "yaml")


def test_corrupt_gzip(tmp_path: Path) -> None:
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b'{"ip": "10.0.0.1", "user": "x"}\n' * 100)[:40])
    with pytest.raises(InputError):
        load_identity(p)


@pytest.mark.parametrize(("v", "ns"), [
    (1.5, 1_500_000_000), (2, 2 * NS), ("3", 3 * NS), ("4.000000001", 4 * NS + 1),
    ("1970-01-01T00:00:05Z", 5 * NS), ("1970-01-01T01:00:06.25+01:00", 6 * NS + NS // 4),
])
def test_parse_time(v: object, ns: int) -> None:
    assert parse_time_ns(v) == ns


@pytest.mark.parametrize("v", [True, None, "yesterday", "2025-13-01T00:00:00Z"])
def test_parse_time_rejects(v: object) -> None:
    with pytest.raises(ValueError):
        parse_time_ns(v)


# -- corpus: real Zeek logs --------------------------------------------------------------


@pytest.mark.corpus
def test_zeek_baseline_dhcp_log() -> None:
    res = load_identity(corpus_file(
        "zeek/Baseline/scripts.base.protocols.dhcp.dhcp-all-msg-types/dhcp.log"))
    # btest canonifies ts to XXXXXXXXXX.XXXXXX: those rows cannot be timed and are skipped
    assert res.fmt == "zeek-dhcp" and list(res) == [] and res.skipped == 3


@pytest.mark.corpus
def test_zeek_baseline_kerberos_log_with_times_restored(tmp_path: Path) -> None:
    src = corpus_file("zeek/Baseline/scripts.base.protocols.tcp.krb-tcp-tso/kerberos.log")
    text = src.read_text().replace("XXXXXXXXXX.XXXXXX", f"{T}.000000")
    res = load_identity(write(tmp_path, "kerberos.log", text))
    assert res.fmt == "zeek-kerberos"
    got = {(b.ip, b.user, b.hostname, b.confidence) for b in res}
    assert got == {("172.16.0.211", "administrator@TEST.LOCAL", None, 0.9),
                   ("172.16.0.211", "Administrator@TEST.LOCAL", None, 0.9),
                   ("172.16.0.211", None, "desktop-rbdmvva", 0.9)}
    assert res.skipped == 6  # the 2 failed AS rows and 4 AP rows without a name


@pytest.mark.corpus
def test_wrccdc_zeek_tsv_and_json_twins_agree() -> None:
    tsv = load_identity(corpus_file("zeek-wrccdc-logs/zeek-default/kerberos.log.gz"))
    js = load_identity(corpus_file("zeek-wrccdc-logs/zeek-json/kerberos.json.gz"))
    assert tsv.fmt == js.fmt == "zeek-kerberos"
    assert list(tsv) == list(js)
    assert tsv.skipped == js.skipped == 11  # every row names only the realm ("/NM")
