"""Attribution through the hunt: DHCP on the wire, an identity feed, IP reuse, pseudonyms."""

from __future__ import annotations

import json

from click.testing import CliRunner
from scapy.all import BOOTP, DHCP, IP, UDP, Ether

from sensor.cli import main
from tests.helpers.packets import Lab, client_hello_record

IP_REUSED = "10.0.0.50"
MAC_A, MAC_B = "02:aa:00:00:00:01", "02:bb:00:00:00:02"


def _dhcp_ack(lab: Lab, mac: str, ip: str, host: str, lease_s: int) -> None:
    chaddr = bytes.fromhex(mac.replace(":", "")) + b"\0" * 10
    req = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
           / UDP(sport=68, dport=67) / BOOTP(op=1, chaddr=chaddr, xid=7)
           / DHCP(options=[("message-type", "request"), ("requested_addr", ip),
                           ("hostname", host), "end"]))
    ack = (Ether(src="02:00:00:00:00:fe", dst=mac) / IP(src="10.0.0.1", dst=ip)
           / UDP(sport=67, dport=68) / BOOTP(op=2, chaddr=chaddr, xid=7, yiaddr=ip)
           / DHCP(options=[("message-type", "ack"), ("server_id", "10.0.0.1"),
                           ("lease_time", lease_s), "end"]))
    lab._add(req)
    lab._add(ack)


def _capture(tmp_path):
    lab = Lab()
    _dhcp_ack(lab, MAC_A, IP_REUSED, "alice-laptop", 600)
    lab.tcp(IP_REUSED, 50000, "10.9.9.9", 443, [client_hello_record("chatgpt.com")])
    lab.wait(900)  # the first lease has expired
    _dhcp_ack(lab, MAC_B, IP_REUSED, "bob-desktop", 600)
    lab.tcp(IP_REUSED, 50001, "10.9.9.8", 443, [client_hello_record("claude.ai")])
    lab.tcp(IP_REUSED, 50002, "10.9.9.9", 443, [client_hello_record("chatgpt.com")])
    return lab.write(tmp_path / "reuse.pcap"), lab


def test_ip_reuse_attributes_each_flow_to_the_device_and_user_of_its_time(tmp_path):
    pcap, _lab = _capture(tmp_path)
    t0 = 1_700_000_000
    feed = tmp_path / "vpn.csv"
    feed.write_text("ip,mac,user,host,start,end\n"
                    f"{IP_REUSED},,alice,,{t0},{t0 + 800}\n"
                    f"{IP_REUSED},,bob,,{t0 + 850},{t0 + 5000}\n")
    r = CliRunner().invoke(main, ["hunt", str(pcap), "--identity", f"csv:{feed}"])
    assert r.exit_code == 0, r.output
    found = [json.loads(x) for x in r.stdout.splitlines()]
    got = sorted((f["service"]["id"], f["client"]["mac"], f["client"]["hostname"],
                  f["client"]["user"]) for f in found)
    assert got == [
        ("chatgpt", MAC_A, "alice-laptop", "alice"),
        ("chatgpt", MAC_B, "bob-desktop", "bob"),  # same IP and service, another device
        ("claude", MAC_B, "bob-desktop", "bob"),
    ]
    assert len({f["id"] for f in found}) == 3
    sources = {a["source"] for f in found for a in f["client"]["attribution"]}
    assert any("dhcp" in s for s in sources) and "feed" in sources
    assert "USER" in r.stderr and "alice" in r.stderr  # the summary groups by user


def test_pseudonymize_replaces_names_everywhere(tmp_path):
    pcap, _ = _capture(tmp_path)
    obs = tmp_path / "obs.jsonl"
    r = CliRunner(env={"SHADOWAI_PSEUDONYM_KEY": "test-key-one-0123456789"}).invoke(
        main, ["hunt", str(pcap), "--pseudonymize", "--observations", str(obs), "-q"])
    assert r.exit_code == 0, r.output
    text = r.stdout + obs.read_text()
    for secret in ("alice-laptop", "bob-desktop", MAC_A, MAC_B):
        assert secret not in text
    found = [json.loads(x) for x in r.stdout.splitlines()]
    hosts = {f["client"]["hostname"] for f in found}
    assert len(hosts) == 2 and all(h.startswith("host-") for h in hosts)
    # stable for one key, different under another
    r2 = CliRunner(env={"SHADOWAI_PSEUDONYM_KEY": "test-key-one-0123456789"}).invoke(
        main, ["hunt", str(pcap), "--pseudonymize", "-q"])
    assert r2.stdout == r.stdout
    r3 = CliRunner(env={"SHADOWAI_PSEUDONYM_KEY": "test-key-two-0123456789"}).invoke(
        main, ["hunt", str(pcap), "--pseudonymize", "-q"])
    assert {json.loads(x)["client"]["hostname"] for x in r3.stdout.splitlines()}.isdisjoint(hosts)


def test_pseudonymize_without_a_key_is_a_one_line_error(tmp_path):
    pcap, _ = _capture(tmp_path)
    r = CliRunner(env={"SHADOWAI_PSEUDONYM_KEY": ""}).invoke(main, ["hunt", str(pcap),
                                                                    "--pseudonymize"])
    assert r.exit_code == 1 and "needs a key" in r.stderr
