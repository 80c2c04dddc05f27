"""HTTP(S) transports: Splunk HEC, Elasticsearch ``_bulk`` into a data stream, webhook.

Status handling shared by all three: 2xx delivered; 429, 5xx and connection errors
are retried with backoff; 401/403 stop delivery until the credentials are fixed
(retried slowly, the spool keeps everything); other 4xx reject the records (counted).
Error messages carry the status code and host, never headers or payloads.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import uuid
from typing import Any

from sensor.errors import InputError
from sensor.sinks.url import SinkSpec, read_secret
from sensor.sinks.worker import PermanentError, TransientError, Transport

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def tls_context(spec: SinkSpec) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        if spec.param("ca"):
            ctx.load_verify_locations(cafile=spec.param("ca"))
        if spec.param("cert"):
            ctx.load_cert_chain(spec.param("cert") or "", spec.param("key") or None)
    except (OSError, ssl.SSLError) as e:
        raise InputError(f"sink {spec.display}: cannot load TLS files: "
                         f"{getattr(e, 'strerror', None) or type(e).__name__}") from None
    return ctx


class HttpTransport(Transport):
    def __init__(self, spec: SinkSpec, default_path: str) -> None:
        self.spec = spec
        self.https = spec.scheme.endswith("https")
        self.path = spec.path if spec.path and spec.path != "/" else default_path
        self.timeout = float(spec.int_param("timeout_s", 30))
        self.ctx = tls_context(spec) if self.https else None
        self.headers: dict[str, str] = {"User-Agent": "shadowai-sensor"}
        self.conn: http.client.HTTPConnection | None = None
        self.retry_sleep = 0.05

    def _post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        where = f"{self.spec.host}:{self.spec.port}"
        if self.conn is None:
            if self.https:
                self.conn = http.client.HTTPSConnection(self.spec.host, self.spec.port,
                                                        timeout=self.timeout, context=self.ctx)
            else:
                self.conn = http.client.HTTPConnection(self.spec.host, self.spec.port,
                                                       timeout=self.timeout)
        try:
            self.conn.request("POST", path, body=body,
                              headers={**self.headers, "Content-Type": content_type})
            resp = self.conn.getresponse()
            data = resp.read()
        except ssl.SSLCertVerificationError as e:
            self.close()
            raise PermanentError(f"TLS to {where}: certificate not trusted "
                                 f"({e.verify_message})") from None
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise TransientError(f"POST {where}: "
                                 f"{getattr(e, 'strerror', None) or type(e).__name__}") from None
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        status = resp.status
        if status in (401, 403):
            raise PermanentError(f"POST {where}: credentials rejected (HTTP {status})")
        if status in RETRY_STATUS:
            raise TransientError(f"POST {where}: HTTP {status}")
        return status, data

    def _halves(self, batch: list[bytes]) -> int:
        """HTTP 413, too big for the receiver: send each half on its own."""
        half = len(batch) // 2
        return self.send(batch[:half]) + self.send(batch[half:])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SplunkHecTransport(HttpTransport):
    """``POST /services/collector/event`` with events concatenated in one body."""

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec, "/services/collector/event")
        token = read_secret(spec, "token")
        if not token:
            raise InputError(f"sink {spec.display}: needs token_env or token_file")
        self.headers["Authorization"] = f"Splunk {token}"
        self.headers["X-Splunk-Request-Channel"] = spec.param("channel") or str(uuid.uuid4())

    def send(self, batch: list[bytes]) -> int:
        rejected = 0
        while batch:
            status, data = self._post(self.path, b"\n".join(batch), "application/json")
            if 200 <= status < 300:
                return rejected
            if status == 413 and len(batch) > 1:
                return rejected + self._halves(batch)
            reply = _json(data)
            bad = reply.get("invalid-event-number")
            if status == 400 and isinstance(bad, int) and 0 <= bad < len(batch):
                # Drop the invalid event (counted) and send the others again: HEC may
                # or may not have indexed those before it, and a duplicate is better
                # than a loss.
                rejected += 1
                batch = batch[:bad] + batch[bad + 1:]
                continue
            return rejected + len(batch)   # the whole request is unusable: do not loop
        return rejected


class ElasticBulkTransport(HttpTransport):
    """``POST /<data stream>/_bulk`` with ``create`` actions; retries only failed items."""

    max_item_retries = 8

    def __init__(self, spec: SinkSpec) -> None:
        stream = spec.path.strip("/")
        super().__init__(spec, "/")
        self.path = f"/{stream}/_bulk"
        self.action = json.dumps({"create": {}}).encode()
        api_key = read_secret(spec, "api_key")
        if api_key:
            self.headers["Authorization"] = f"ApiKey {api_key}"
        elif spec.param("user"):
            pw = read_secret(spec, "password") or ""
            cred = base64.b64encode(f"{spec.param('user')}:{pw}".encode()).decode()
            self.headers["Authorization"] = f"Basic {cred}"

    def send(self, batch: list[bytes]) -> int:
        todo = list(batch)
        rejected = 0
        sleep = self.retry_sleep
        for _ in range(self.max_item_retries):
            body = b"".join(self.action + b"\n" + doc + b"\n" for doc in todo)
            status, data = self._post(self.path, body, "application/x-ndjson")
            if status == 413 and len(todo) > 1:
                return rejected + self._halves(todo)
            if not 200 <= status < 300:
                return rejected + len(todo)   # 400 on the whole request: unusable
            reply = _json(data)
            if not reply.get("errors"):
                return rejected
            items = reply.get("items") or []
            if len(items) != len(todo):
                raise TransientError(f"_bulk on {self.spec.host}: reply has {len(items)} "
                                     f"items for {len(todo)} documents")
            retry: list[bytes] = []
            for doc, item in zip(todo, items, strict=True):
                result: dict[str, Any] = next(iter(item.values()), {}) \
                    if isinstance(item, dict) else {}
                st = int(result.get("status", 500))
                if 200 <= st < 300 or st == 409:   # 409: this document is already there
                    continue
                if st in RETRY_STATUS:
                    retry.append(doc)
                else:
                    rejected += 1
            if not retry:
                return rejected
            todo = retry
            time.sleep(sleep)
            sleep = min(sleep * 2, 2.0)
        raise TransientError(f"_bulk on {self.spec.host}: {len(todo)} documents still "
                             "refused after retries")


class WebhookTransport(HttpTransport):
    """``POST`` a JSON array of records to any HTTPS endpoint."""

    batch_records = 200

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec, "/")
        token = read_secret(spec, "token")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def send(self, batch: list[bytes]) -> int:
        status, _ = self._post(self.path, b"[" + b",".join(batch) + b"]", "application/json")
        if status == 413 and len(batch) > 1:
            return self._halves(batch)
        return 0 if 200 <= status < 300 else len(batch)


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
