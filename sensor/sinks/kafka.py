"""Kafka via confluent-kafka: idempotent producer (acks=all), key = client IP or
service id (``key_by=client|service``) so one client's findings stay ordered."""

from __future__ import annotations

from typing import Any

from sensor.errors import InputError
from sensor.sinks.url import SinkSpec
from sensor.sinks.worker import TransientError, Transport

KEY_SEP = b"\x00"


def kafka_key(rec: dict[str, Any], key_by: str) -> bytes:
    if key_by == "service":
        svc = rec.get("service") or {}
        return str(svc.get("id") or (rec.get("server") or {}).get("name") or "").encode()
    return str((rec.get("client") or {}).get("ip") or rec.get("ip") or "").encode()


class KafkaTransport(Transport):
    batch_records = 1000

    def __init__(self, spec: SinkSpec) -> None:
        try:
            import confluent_kafka
        except ImportError:
            raise InputError(f"sink {spec.display}: needs the confluent-kafka package "
                             "(pip install confluent-kafka)") from None
        self.ck: Any = confluent_kafka
        self.spec = spec
        self.topic = spec.path.strip("/")
        self.timeout = float(spec.int_param("timeout_s", 30))
        self.producer: Any = None
        self.conf: dict[str, Any] = {
            "bootstrap.servers": f"{spec.host}:{spec.port}",
            "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": int(self.timeout * 1000),
            "client.id": "shadowai-sensor",
        }
        if spec.param("ca"):
            self.conf.update({"security.protocol": "SSL", "ssl.ca.location": spec.param("ca")})
            if spec.param("cert"):
                self.conf["ssl.certificate.location"] = spec.param("cert")
                self.conf["ssl.key.location"] = spec.param("key") or spec.param("cert")

    def open(self) -> None:
        if self.producer is None:
            self.producer = self.ck.Producer(self.conf, logger=None)

    def send(self, batch: list[bytes]) -> int:
        errors: list[str] = []

        def done(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err.name()))

        for rec in batch:
            key, _, value = rec.partition(KEY_SEP)
            while True:
                try:
                    self.producer.produce(self.topic, value=value, key=key or None,
                                          on_delivery=done)
                    break
                except BufferError:       # local queue full: let it drain
                    self.producer.poll(0.1)
        left = self.producer.flush(self.timeout)
        if left or errors:
            raise TransientError(f"kafka {self.spec.host}:{self.spec.port}: "
                                 f"{left} undelivered, errors {sorted(set(errors))[:3]}")
        return 0

    def close(self) -> None:
        # keep the producer: its idempotence state survives reconnects inside librdkafka
        pass
