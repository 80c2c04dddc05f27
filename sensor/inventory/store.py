"""The AI asset inventory: an embedded SQLite store that survives restarts.

Findings (their ``to_dict()`` form) are folded into assets: AI services used
(with their clients, users, endpoints and traffic volume), self-hosted model
servers (with the models seen), MCP servers (with their tools), clients and
users. Counts are kept per *episode*, the (finding id, first_seen) pair: a
watch loop re-sends the same finding with growing counts and the same
first_seen (replaced, not added), a re-hunt of the same capture gives the
same episode again (no double count), and a hunt of another day's capture
gives a new first_seen (added).

The database uses WAL and ``PRAGMA user_version``; :data:`MIGRATIONS` moves
an older file forward on open, a newer one is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sensor.errors import InputError

NS = 1_000_000_000
USAGE_TYPES = frozenset({"ai_service_use", "mcp_server_use"})
SELF_HOSTED_TYPE = "self_hosted_llm"
MCP_TYPE = "mcp_server"
MAX_LIST = 256  # distinct endpoints/models/tools kept per asset (bounded rows per asset)

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE findings(id TEXT PRIMARY KEY, type TEXT NOT NULL, asset_key TEXT,
        first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, recorded_ns INTEGER NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX findings_asset ON findings(type, asset_key);
    CREATE TABLE episodes(finding_id TEXT NOT NULL, first_ns INTEGER NOT NULL,
        counts TEXT NOT NULL, PRIMARY KEY(finding_id, first_ns));
    CREATE TABLE sent(id TEXT PRIMARY KEY, sent_ns INTEGER NOT NULL, counts TEXT NOT NULL);
    CREATE TABLE services(id TEXT PRIMARY KEY, name TEXT, vendor TEXT, category TEXT,
        sanctioned INTEGER, first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL);
    CREATE TABLE service_clients(service_id TEXT, client TEXT, PRIMARY KEY(service_id, client));
    CREATE TABLE service_users(service_id TEXT, user TEXT, PRIMARY KEY(service_id, user));
    CREATE TABLE service_endpoints(service_id TEXT, endpoint TEXT,
        PRIMARY KEY(service_id, endpoint));
    CREATE TABLE servers(key TEXT PRIMARY KEY, ip TEXT, port INTEGER, name TEXT, product TEXT,
        vendor TEXT, version TEXT, authentication TEXT,
        first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL);
    CREATE TABLE server_models(key TEXT, model TEXT, pulled INTEGER NOT NULL,
        PRIMARY KEY(key, model));
    CREATE TABLE server_clients(key TEXT, client TEXT, PRIMARY KEY(key, client));
    CREATE TABLE mcp_servers(key TEXT PRIMARY KEY, ip TEXT, port INTEGER, name TEXT,
        protocol_version TEXT, first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL,
        server_names TEXT NOT NULL, transports TEXT NOT NULL);
    CREATE TABLE mcp_tools(key TEXT, tool TEXT, PRIMARY KEY(key, tool));
    CREATE TABLE mcp_clients(key TEXT, client TEXT, PRIMARY KEY(key, client));
    CREATE TABLE clients(ip TEXT PRIMARY KEY, mac TEXT, hostname TEXT, user TEXT,
        first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL);
    CREATE TABLE users(name TEXT PRIMARY KEY, first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL);
    CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ns INTEGER NOT NULL,
        inputs TEXT NOT NULL, versions TEXT NOT NULL, stats TEXT NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
MEMORY = ":memory:"  # Inventory(Path(MEMORY)): a throw-away store (hunt --report without --db)


def default_db_path() -> Path:
    """$SHADOWAI_STATE_DIR/inventory.db, else $XDG_STATE_HOME/shadowai/, else ~/.local/state/."""
    d = os.environ.get("SHADOWAI_STATE_DIR")
    if d:
        return Path(d) / "inventory.db"
    x = os.environ.get("XDG_STATE_HOME")
    base = Path(x) if x else Path.home() / ".local" / "state"
    return base / "shadowai" / "inventory.db"


def parse_ts(text: Any) -> int | None:
    """RFC 3339 (as sensor.findings.rfc3339 writes it) -> ns since the epoch."""
    if not isinstance(text, str) or not text:
        return None
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        sec = int(datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
        digits = (frac + "000000000")[:9] if frac.isdigit() else "0"
        return sec * NS + int(digits)
    except ValueError:
        return None


# -- assets --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceAsset:
    id: str
    name: str
    vendor: str
    category: str
    sanctioned: bool | None
    first_ns: int
    last_ns: int
    clients: tuple[str, ...]
    users: tuple[str, ...]
    endpoints: tuple[str, ...]
    flows: int
    bytes_client_to_server: int
    bytes_server_to_client: int
    dns_queries: int


@dataclass(frozen=True, slots=True)
class ServerAsset:
    key: str  # "ip:port"
    ip: str
    port: int | None
    name: str | None
    product: str
    vendor: str
    version: str | None
    authentication: str | None
    models: tuple[str, ...]
    pulled_models: tuple[str, ...]
    clients: tuple[str, ...]
    first_ns: int
    last_ns: int
    exchanges: int


@dataclass(frozen=True, slots=True)
class McpServerAsset:
    key: str  # "ip:port"
    ip: str
    port: int | None
    name: str | None
    server_names: tuple[str, ...]
    protocol_version: str | None
    transports: tuple[str, ...]
    tools: tuple[str, ...]
    tool_calls: tuple[tuple[str, int], ...]
    clients: tuple[str, ...]
    first_ns: int
    last_ns: int
    exchanges: int


@dataclass(frozen=True, slots=True)
class ClientAsset:
    ip: str
    mac: str | None
    hostname: str | None
    user: str | None
    first_ns: int
    last_ns: int
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserAsset:
    name: str
    first_ns: int
    last_ns: int
    clients: tuple[str, ...]
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AssetSet:
    services: tuple[ServiceAsset, ...]
    servers: tuple[ServerAsset, ...]
    mcp_servers: tuple[McpServerAsset, ...]
    clients: tuple[ClientAsset, ...]
    users: tuple[UserAsset, ...]


# -- the store ------------------------------------------------------------------------


def _counts(f: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    c = f.get("counts")
    if isinstance(c, dict):
        for k, v in c.items():
            if isinstance(v, int) and not isinstance(v, bool):
                out[str(k)] = v
    mcp = f.get("mcp")
    if isinstance(mcp, dict):  # tool calls are cumulative like counts: kept per episode
        for t in mcp.get("tools_called") or []:
            if isinstance(t, dict) and isinstance(t.get("name"), str) \
                    and isinstance(t.get("count"), int):
                out[f"tool:{t['name']}"] = t["count"]
    return out


def _obj(f: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = f.get(key)
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _client_ips(items: Any) -> list[str]:
    out: list[str] = []
    for c in items or []:
        if isinstance(c, dict) and isinstance(c.get("ip"), str):
            out.append(c["ip"])
    return out[:MAX_LIST]


def _asset_key(f: Mapping[str, Any]) -> str | None:
    t = f.get("type")
    if t in USAGE_TYPES:
        return _str(_obj(f, "service").get("id"))
    if t in (SELF_HOSTED_TYPE, MCP_TYPE):
        s = _obj(f, "server")
        ip = _str(s.get("ip"))
        return f"{ip}:{s.get('port')}" if ip else None
    return None


class Inventory:
    """``Inventory(path)``: open (create, migrate) the store; a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        memory = str(path) == MEMORY
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(MEMORY if memory else str(self.path), timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise InputError(f"inventory {self.path}: {e}") from None
        self._pending: dict[str, str] = {}  # id -> counts JSON seen by due()

    def _migrate(self) -> None:
        ver = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if ver > SCHEMA_VERSION:
            raise InputError(f"inventory {self.path} has schema version {ver}, newer than "
                             f"this sensor's {SCHEMA_VERSION}")
        for i in range(ver, SCHEMA_VERSION):
            # executescript commits first; the version bump is in the same script
            self._db.executescript(f"BEGIN;\n{MIGRATIONS[i]}\nPRAGMA user_version={i + 1};\n"
                                   "COMMIT;")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------

    def record(self, findings: Iterable[dict[str, Any]], now_ns: int) -> list[dict[str, Any]]:
        """Fold findings into the assets; return those whose id was never recorded before."""
        new: list[dict[str, Any]] = []
        with self._db:
            for f in findings:
                fid = f.get("id")
                if not isinstance(fid, str):
                    continue
                first = parse_ts(f.get("first_seen")) or now_ns
                last = parse_ts(f.get("last_seen")) or first
                seen = self._db.execute("SELECT 1 FROM findings WHERE id=?", (fid,)).fetchone()
                if seen is None:
                    new.append(f)
                self._db.execute(
                    "INSERT INTO findings VALUES(?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                    "type=excluded.type, asset_key=excluded.asset_key, "
                    "first_ns=min(first_ns, excluded.first_ns), "
                    "last_ns=max(last_ns, excluded.last_ns), recorded_ns=excluded.recorded_ns, "
                    "data=excluded.data",
                    (fid, str(f.get("type")), _asset_key(f), first, last, now_ns,
                     json.dumps(f, sort_keys=True, default=str)))
                self._db.execute("INSERT OR REPLACE INTO episodes VALUES(?,?,?)",
                                 (fid, first, json.dumps(_counts(f), sort_keys=True)))
                self._fold(f, first, last)
        return new

    def _span(self, table: str, col: str, key: str, first: int, last: int) -> None:
        self._db.execute(f"UPDATE {table} SET first_ns=min(first_ns,?), last_ns=max(last_ns,?) "
                         f"WHERE {col}=?", (first, last, key))

    def _fold(self, f: Mapping[str, Any], first: int, last: int) -> None:
        t = f.get("type")
        client = _obj(f, "client")
        ip = _str(client.get("ip"))
        user = _str(client.get("user"))
        if ip:
            self._client(ip, _str(client.get("mac")), _str(client.get("hostname")), user,
                         first, last)
        if user:
            self._user(user, first, last)
        if t in USAGE_TYPES:
            self._service(f, ip, user, first, last)
        elif t == SELF_HOSTED_TYPE:
            self._server(f, first, last)
        elif t == MCP_TYPE:
            self._mcp(f, first, last)

    def _client(self, ip: str, mac: str | None, hostname: str | None, user: str | None,
                first: int, last: int) -> None:
        self._db.execute(
            "INSERT INTO clients VALUES(?,?,?,?,?,?) ON CONFLICT(ip) DO UPDATE SET "
            "mac=coalesce(excluded.mac, mac), hostname=coalesce(excluded.hostname, hostname), "
            "user=coalesce(excluded.user, user), first_ns=min(first_ns, excluded.first_ns), "
            "last_ns=max(last_ns, excluded.last_ns)", (ip, mac, hostname, user, first, last))

    def _user(self, name: str, first: int, last: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO users VALUES(?,?,?)", (name, first, last))
        self._span("users", "name", name, first, last)

    def _service(self, f: Mapping[str, Any], ip: str | None, user: str | None,
                 first: int, last: int) -> None:
        s = _obj(f, "service")
        sid = _str(s.get("id"))
        if sid is None:
            return
        sanc = s.get("sanctioned")
        sanc_i = None if not isinstance(sanc, bool) else int(sanc)
        self._db.execute(
            "INSERT INTO services VALUES(?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
            "name=excluded.name, vendor=excluded.vendor, category=excluded.category, "
            "sanctioned=coalesce(excluded.sanctioned, sanctioned), "
            "first_ns=min(first_ns, excluded.first_ns), last_ns=max(last_ns, excluded.last_ns)",
            (sid, str(s.get("name") or sid), str(s.get("vendor") or ""),
             str(s.get("category") or ""), sanc_i, first, last))
        if ip:
            self._db.execute("INSERT OR IGNORE INTO service_clients VALUES(?,?)", (sid, ip))
        if user:
            self._db.execute("INSERT OR IGNORE INTO service_users VALUES(?,?)", (sid, user))
        name = _str(_obj(f, "server").get("name"))
        if name and self._count("service_endpoints", "service_id", sid) < MAX_LIST:
            self._db.execute("INSERT OR IGNORE INTO service_endpoints VALUES(?,?)", (sid, name))

    def _count(self, table: str, col: str, key: str) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {table} WHERE {col}=?",
                                    (key,)).fetchone()[0])

    def _server(self, f: Mapping[str, Any], first: int, last: int) -> None:
        key = _asset_key(f)
        if key is None:
            return
        srv, s, sh = _obj(f, "server"), _obj(f, "service"), _obj(f, SELF_HOSTED_TYPE)
        self._db.execute(
            "INSERT INTO servers VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
            "name=coalesce(excluded.name, name), product=excluded.product, "
            "vendor=excluded.vendor, version=coalesce(excluded.version, version), "
            "authentication=CASE WHEN excluded.authentication IN ('none','required') "
            "THEN excluded.authentication ELSE coalesce(authentication, excluded.authentication) "
            "END, first_ns=min(first_ns, excluded.first_ns), "
            "last_ns=max(last_ns, excluded.last_ns)",
            (key, _str(srv.get("ip")), srv.get("port"), _str(srv.get("name")),
             str(sh.get("product") or s.get("name") or "unknown"), str(s.get("vendor") or ""),
             _str(sh.get("version")), _str(sh.get("authentication")), first, last))
        for pulled, items in ((0, sh.get("models")), (1, sh.get("pulled_models"))):
            for m in (items or [])[:MAX_LIST]:
                if isinstance(m, str) and m:
                    self._db.execute(
                        "INSERT INTO server_models VALUES(?,?,?) ON CONFLICT(key, model) "
                        "DO UPDATE SET pulled=min(pulled, excluded.pulled)", (key, m, pulled))
        for c in _client_ips(sh.get("clients")):
            self._db.execute("INSERT OR IGNORE INTO server_clients VALUES(?,?)", (key, c))
            self._client(c, None, None, None, first, last)

    def _mcp(self, f: Mapping[str, Any], first: int, last: int) -> None:
        key = _asset_key(f)
        if key is None:
            return
        srv, m = _obj(f, "server"), _obj(f, "mcp")
        row = self._db.execute("SELECT server_names, transports FROM mcp_servers WHERE key=?",
                               (key,)).fetchone()
        names = _merge(json.loads(row[0]) if row else [], m.get("server_names"))
        transports = _merge(json.loads(row[1]) if row else [], m.get("transports"))
        self._db.execute(
            "INSERT INTO mcp_servers VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
            "name=coalesce(excluded.name, name), "
            "protocol_version=coalesce(excluded.protocol_version, protocol_version), "
            "first_ns=min(first_ns, excluded.first_ns), last_ns=max(last_ns, excluded.last_ns), "
            "server_names=excluded.server_names, transports=excluded.transports",
            (key, _str(srv.get("ip")), srv.get("port"), _str(srv.get("name")),
             _str(m.get("protocol_version")), first, last, json.dumps(names),
             json.dumps(transports)))
        tools = [t for t in (m.get("tools_listed") or []) if isinstance(t, str)]
        tools += [t["name"] for t in (m.get("tools_called") or [])
                  if isinstance(t, dict) and isinstance(t.get("name"), str)]
        for t in tools[:MAX_LIST]:
            self._db.execute("INSERT OR IGNORE INTO mcp_tools VALUES(?,?)", (key, t))
        for c in _client_ips(m.get("clients")):
            self._db.execute("INSERT OR IGNORE INTO mcp_clients VALUES(?,?)", (key, c))
            self._client(c, None, None, None, first, last)

    def due(self, findings: Iterable[dict[str, Any]], now_ns: int,
            reemit_interval_s: float) -> list[dict[str, Any]]:
        """Findings to (re-)send now: never sent, or sent > interval ago and counts changed."""
        out: list[dict[str, Any]] = []
        for f in findings:
            fid = f.get("id")
            if not isinstance(fid, str):
                continue
            counts = json.dumps(_counts(f), sort_keys=True)
            row = self._db.execute("SELECT sent_ns, counts FROM sent WHERE id=?",
                                   (fid,)).fetchone()
            if row is None or (now_ns - int(row[0]) >= reemit_interval_s * NS
                               and row[1] != counts):
                out.append(f)
                self._pending[fid] = counts
        return out

    def mark_sent(self, ids: Iterable[str], now_ns: int) -> None:
        with self._db:
            for fid in ids:
                counts = self._pending.pop(fid, None)
                if counts is None:
                    row = self._db.execute("SELECT data FROM findings WHERE id=?",
                                           (fid,)).fetchone()
                    counts = json.dumps(_counts(json.loads(row[0])) if row else {},
                                        sort_keys=True)
                self._db.execute("INSERT OR REPLACE INTO sent VALUES(?,?,?)",
                                 (fid, now_ns, counts))

    def record_run(self, inputs: Iterable[str], versions: Mapping[str, Any],
                   stats: Mapping[str, Any], now_ns: int | None = None) -> None:
        """Remember one hunt/watch run: its inputs, signature/model versions and stats."""
        ts = time.time_ns() if now_ns is None else now_ns
        with self._db:
            self._db.execute("INSERT INTO runs(ts_ns, inputs, versions, stats) VALUES(?,?,?,?)",
                             (ts, json.dumps([str(i) for i in inputs]),
                              json.dumps(dict(versions), sort_keys=True, default=str),
                              json.dumps(dict(stats), sort_keys=True, default=str)))

    # -- reading -------------------------------------------------------------------

    def findings(self) -> list[dict[str, Any]]:
        """The last recorded form of every finding, oldest first."""
        rows = self._db.execute("SELECT data FROM findings ORDER BY first_ns, id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def _sums(self, types: tuple[str, ...]) -> dict[str, dict[str, int]]:
        """Per asset key: counts summed over every episode of its findings."""
        q = ("SELECT f.asset_key, e.counts FROM episodes e JOIN findings f ON f.id=e.finding_id "
             f"WHERE f.type IN ({','.join('?' * len(types))}) AND f.asset_key IS NOT NULL")
        out: dict[str, dict[str, int]] = {}
        for key, counts in self._db.execute(q, types):
            acc = out.setdefault(key, {})
            for k, v in json.loads(counts).items():
                acc[k] = acc.get(k, 0) + int(v)
        return out

    def _multi(self, table: str, col: str, val: str, where: str = "") -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self._db.execute(f"SELECT {col}, {val} FROM {table} {where} "
                                     f"ORDER BY {col}, {val}"):
            out.setdefault(k, []).append(v)
        return out

    def assets(self) -> AssetSet:
        db = self._db
        sums = self._sums(tuple(USAGE_TYPES))
        sc = self._multi("service_clients", "service_id", "client")
        su = self._multi("service_users", "service_id", "user")
        se = self._multi("service_endpoints", "service_id", "endpoint")
        services = []
        for sid, name, vendor, cat, sanc, first, last in db.execute(
                "SELECT * FROM services ORDER BY first_ns, id"):
            n = sums.get(sid, {})
            services.append(ServiceAsset(
                sid, name, vendor, cat, None if sanc is None else bool(sanc), first, last,
                tuple(sc.get(sid, ())), tuple(su.get(sid, ())), tuple(se.get(sid, ())),
                n.get("flows", 0), n.get("bytes_client_to_server", 0),
                n.get("bytes_server_to_client", 0), n.get("dns_queries", 0)))
        ssum = self._sums((SELF_HOSTED_TYPE,))
        models = self._multi("server_models", "key", "model", "WHERE pulled=0")
        pulled = self._multi("server_models", "key", "model", "WHERE pulled=1")
        srvc = self._multi("server_clients", "key", "client")
        servers = [ServerAsset(key, ip, port, name, prod, vend, ver, auth,
                               tuple(models.get(key, ())), tuple(pulled.get(key, ())),
                               tuple(srvc.get(key, ())), first, last,
                               ssum.get(key, {}).get("exchanges", 0))
                   for key, ip, port, name, prod, vend, ver, auth, first, last in db.execute(
                       "SELECT * FROM servers ORDER BY first_ns, key")]
        msum = self._sums((MCP_TYPE,))
        tools = self._multi("mcp_tools", "key", "tool")
        mcpc = self._multi("mcp_clients", "key", "client")
        mcps = []
        for key, ip, port, name, proto, first, last, names, transports in db.execute(
                "SELECT * FROM mcp_servers ORDER BY first_ns, key"):
            n = msum.get(key, {})
            calls = tuple(sorted((k[5:], v) for k, v in n.items() if k.startswith("tool:")))
            mcps.append(McpServerAsset(key, ip, port, name, tuple(json.loads(names)), proto,
                                       tuple(json.loads(transports)),
                                       tuple(tools.get(key, ())), calls,
                                       tuple(mcpc.get(key, ())), first, last,
                                       n.get("exchanges", 0)))
        by_client: dict[str, list[str]] = {}
        for sid, c in db.execute("SELECT service_id, client FROM service_clients "
                                 "ORDER BY service_id"):
            by_client.setdefault(c, []).append(sid)
        clients = [ClientAsset(ip, mac, host, user, first, last, tuple(by_client.get(ip, ())))
                   for ip, mac, host, user, first, last in db.execute(
                       "SELECT * FROM clients ORDER BY first_ns, ip")]
        uclients = self._multi("clients", "user", "ip", "WHERE user IS NOT NULL")
        uservices = self._multi("service_users", "user", "service_id")
        users = [UserAsset(name, first, last, tuple(uclients.get(name, ())),
                           tuple(uservices.get(name, ())))
                 for name, first, last in db.execute("SELECT * FROM users ORDER BY name")]
        return AssetSet(tuple(services), tuple(servers), tuple(mcps), tuple(clients),
                        tuple(users))

    def meta(self) -> dict[str, Any]:
        """Runs recorded: every input hunted, the latest signature/model versions, stats."""
        rows = self._db.execute("SELECT ts_ns, inputs, versions, stats FROM runs "
                                "ORDER BY id").fetchall()
        runs = [{"ts_ns": ts, "inputs": json.loads(i), "versions": json.loads(v),
                 "stats": json.loads(s)} for ts, i, v, s in rows]
        inputs: list[str] = []
        for r in runs:
            for i in r["inputs"]:
                if i not in inputs:
                    inputs.append(i)
        return {"schema_version": self.schema_version, "runs": runs, "inputs": inputs,
                "versions": runs[-1]["versions"] if runs else {},
                "first_run_ns": runs[0]["ts_ns"] if runs else None,
                "last_run_ns": runs[-1]["ts_ns"] if runs else None}


def assets_of(findings: Iterable[dict[str, Any]], now_ns: int | None = None) -> AssetSet:
    """The assets of these findings alone (an in-memory inventory, nothing written)."""
    with Inventory(Path(MEMORY)) as inv:
        inv.record(findings, time.time_ns() if now_ns is None else now_ns)
        return inv.assets()


def _merge(old: list[Any], new: Any) -> list[str]:
    out = [x for x in old if isinstance(x, str)]
    for x in new or []:
        if isinstance(x, str) and x not in out and len(out) < MAX_LIST:
            out.append(x)
    return out
