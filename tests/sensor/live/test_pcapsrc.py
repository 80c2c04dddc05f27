"""The libpcap fallback (pcapy-ng): same batches as the ring, or a clear error."""

from __future__ import annotations

import builtins
import os
import socket
import time

import pytest

from sensor.errors import InputError


def test_missing_pcapy_is_a_clear_error(monkeypatch):
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "pcapy":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    from sensor.live.pcapsrc import PcapSet
    with pytest.raises(InputError, match="pcapy-ng"):
        PcapSet(["lo"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_pcap_backend_on_loopback():
    pytest.importorskip("pcapy")
    from sensor.live.pcapsrc import PcapSet
    port = 41000 + os.getpid() % 20000
    src = PcapSet(["lo"], promisc=False, bpf_filter=f"udp port {port}", timeout_ms=10)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3):
            s.sendto(b"q" * (20 + i), ("127.0.0.1", port))
        s.close()
        got = []
        end = time.monotonic() + 3
        while len(got) < 3 and time.monotonic() < end:
            src.wait(0.1)
            for b in src.batches(100):
                got += [b.packet(i) for i in range(len(b))]
                assert (b.ts_ns > 1_600_000_000 * 10**9).all()
        assert sorted(len(p) for p in got) == [14 + 28 + 20 + i for i in range(3)]
        assert src.stats()["lo"].packets == 3
    finally:
        src.close()
    with pytest.raises(InputError):
        PcapSet(["nonexistent0"])
