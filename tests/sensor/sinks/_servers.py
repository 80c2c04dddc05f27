"""Loopback receivers for sink tests: an RFC 6587 octet-counting syslog receiver that can
be stopped and restarted on the same port, and an rsyslogd runner."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_octet_frames(buf: bytearray) -> list[bytes]:
    """Pop every complete ``LEN SP MSG`` frame from ``buf``."""
    out: list[bytes] = []
    while True:
        sp = buf.find(b" ")
        if sp <= 0:
            return out
        n = int(buf[:sp])
        if len(buf) < sp + 1 + n:
            return out
        out.append(bytes(buf[sp + 1: sp + 1 + n]))
        del buf[: sp + 1 + n]


class OctetReceiver:
    """Collects syslog messages; ``stop()`` slams every connection shut (unread data is
    lost, as when a receiver crashes), ``start()`` listens again on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._lsock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self._lsock = s
        t = threading.Thread(target=self._accept, args=(s,), daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            self._conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c: socket.socket) -> None:
        buf = bytearray()
        while True:
            try:
                data = c.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            buf += data
            msgs = parse_octet_frames(buf)
            if msgs:
                with self._lock:
                    self.messages.extend(msgs)

    def stop(self) -> None:
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, bytes([1, 0, 0, 0, 0, 0, 0, 0]))
                c.close()
        self._conns.clear()

    def snapshot(self) -> list[bytes]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, n: int, timeout: float) -> list[bytes]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msgs = self.snapshot()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.02)
        return self.snapshot()


RSYSLOG_MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")


def rsyslog_missing() -> str | None:
    if shutil.which("rsyslogd") is None and not Path("/usr/sbin/rsyslogd").exists():
        return "rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls)"
    return None


def gtls_missing() -> str | None:
    mods = list(Path("/usr/lib").rglob("lmnsd_gtls.so"))
    return None if mods else "rsyslog-gnutls not installed (apt-get install rsyslog-gnutls)"


class Rsyslog:
    """rsyslogd -n with imudp, imtcp and imtcp+gtls inputs, writing one line per message:
    ``input<TAB>pri<TAB>hostname<TAB>app<TAB>msgid<TAB>msg``."""

    def __init__(self, workdir: Path, tls: tuple[Path, Path, Path] | None) -> None:
        self.dir = workdir
        self.udp = free_port(socket.SOCK_DGRAM)
        self.tcp = free_port()
        self.tls = free_port() if tls else None
        self.out = workdir / "out.log"
        self.conf = workdir / "rsyslog.conf"
        self.pidfile = workdir / "rsyslog.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            f'global(workDirectory="{workdir}" maxMessageSize="64k"'
            + (f' defaultNetstreamDriverCAFile="{tls[0]}" defaultNetstreamDriverCertFile='
               f'"{tls[1]}" defaultNetstreamDriverKeyFile="{tls[2]}"' if tls else "") + ")",
            'module(load="imudp")',
            'module(load="imtcp" maxSessions="50")',
            'template(name="t" type="string" '
            'string="%inputname%\\t%pri%\\t%hostname%\\t%app-name%\\t%msgid%\\t%msg%\\n")',
            f'input(type="imudp" port="{self.udp}" address="127.0.0.1" name="udp")',
            f'input(type="imtcp" port="{self.tcp}" address="127.0.0.1" name="tcp")',
        ]
        if tls:
            lines.append(f'input(type="imtcp" port="{self.tls}" address="127.0.0.1" name="tls" '
                         'streamDriver.name="gtls" streamDriver.mode="1" '
                         'streamDriver.authMode="x509/certvalid")')
        lines.append(f'action(type="omfile" file="{self.out}" template="t")')
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "rsyslog.err", "ab"))  # noqa: SIM115
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("rsyslogd exited: "
                                   + (self.dir / "rsyslog.err").read_text()[-500:])
            try:
                socket.create_connection(("127.0.0.1", self.tcp), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rsyslogd did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def lines(self) -> list[list[str]]:
        if not self.out.exists():
            return []
        return [ln.split("\t", 5) for ln in self.out.read_text().splitlines() if ln]

    def wait_lines(self, pred: object, n: int, timeout: float) -> list[list[str]]:
        end = time.monotonic() + timeout
        got: list[list[str]] = []
        while time.monotonic() < end:
            got = [ln for ln in self.lines() if callable(pred) and pred(ln)]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return got


def make_pki(d: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, stem: str) -> None:
        (d / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("shadowai test CA"))
          .issuer_name(name("shadowai test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write(ca_key, ca, "ca")
    for stem, eku in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                      ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(f"shadowai test {stem}"))
             .issuer_name(ca.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.ExtendedKeyUsage([eku]), critical=False))
        if stem == "server":
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        write(key, b.sign(ca_key, hashes.SHA256()), stem)
    return {k: d / f"{k}" for k in ("ca.pem", "server.pem", "server.key", "client.pem",
                                     "client.key")}
