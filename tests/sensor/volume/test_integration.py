"""End to end: a crafted capture through the real pipeline with the volume detector."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.pipeline import Pipeline
from sensor.sources.capture import open_capture
from sensor.volume.detector import EXTRACTION, VolumeDetector
from sensor.volume.model import default_model_dir, load_model
from tests.helpers.packets import Lab, client_hello_record

SERVER = "162.159.140.245"


def _conn(lab: Lab, client: str, port: int, answer: int) -> None:
    hello = client_hello_record("api.openai.com")
    request = b"\x17\x03\x03\x04\x00" + bytes(1024)
    reply = [b"\x17\x03\x03\x05\x78" + bytes(1400)] * answer
    lab.tcp(client, port, SERVER, 443, [hello, request], [b"\x16\x03\x03\x00\x10" + bytes(16),
                                                          *reply])


@pytest.mark.slow
def test_query_loop_in_a_capture_is_flagged(tmp_path: Path) -> None:
    lab = Lab(t0=1_793_606_400.0 + 14 * 3600)  # on a 5-minute boundary
    for i in range(240):  # a new connection every second for 4 minutes
        _conn(lab, "10.0.0.66", 20000 + i, 3)
        lab.wait(1.0)
        if i % 60 == 0:  # a person: one question a minute
            _conn(lab, "10.0.0.5", 30000 + i, 6)
    pcap = lab.write(tmp_path / "loop.pcap")
    det = VolumeDetector(load_model(default_model_dir()))
    pipe = Pipeline(Settings(), Catalog.load([default_signature_dir()]), detectors=[det])
    with open_capture(pcap) as r:
        for b in r.batches(4096):
            pipe.feed(b)
    found = [f.to_dict() for f in pipe.finish()]
    hits = [d for d in found if d["type"] == EXTRACTION]
    assert [(d["client"]["ip"], d["service"]["id"]) for d in hits] == [("10.0.0.66",
                                                                        "openai-api")]
    assert hits[0]["volume"]["top_contributions"][0]["robust_z"] > 3
