"""Load catalog YAML into typed entries, reporting every problem with file:line.

YAML is composed into nodes (not constructed into dicts) so every value keeps
its start mark; validation walks the nodes and collects problems instead of
stopping at the first one, so one ``signatures lint`` run shows them all.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from sensor.catalog.schema import (
    ID_RE,
    PATH_RE,
    URL_RE,
    Category,
    HostPattern,
    IpRange,
    Location,
    PatternKind,
    Problem,
    Risk,
    Role,
    Service,
    is_hostname,
)

_E = TypeVar("_E", Category, Risk, Role)
# libyaml's parser when present (about 10x faster); both keep node marks.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"

FILE_KEYS = frozenset({"vendor", "services"})
SERVICE_KEYS = frozenset(
    {
        "id",
        "name",
        "vendor",
        "category",
        "hosts",
        "references",
        "examples",
        "risk",
        "notes",
        "ip_ranges",
    }
)
HOST_KEYS = frozenset({"exact", "suffix", "shared", "role", "paths"})
IP_RANGE_KEYS = frozenset({"cidr", "role", "source"})
EXAMPLE_KEYS = frozenset({"match", "nomatch"})


@dataclass(slots=True)
class LoadResult:
    services: list[Service] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    digest: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def display_path(path: Path, cwd: Path | None = None) -> str:
    """Path as a person would type it: relative to the cwd when under it."""
    try:
        base = cwd if cwd is not None else Path.cwd().resolve()
        return str(path.resolve().relative_to(base))
    except (ValueError, OSError):
        return str(path)


def expand_paths(paths: Iterable[Path], problems: list[Problem]) -> list[Path]:
    """Directories become their ``*.yaml``/``*.yml`` files, in name order.

    A signatures root (a directory with a ``services/`` subdirectory) means
    that subdirectory, so ``--dir signatures`` and ``--dir signatures/services``
    both work.
    """
    files: list[Path] = []
    for path in paths:
        if (path / "services").is_dir():
            path = path / "services"
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                problems.append(Problem(Location(display_path(path), 0), "no *.yaml files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(Location(display_path(path), 0), "no such file or directory"))
    return files


def load_paths(paths: Sequence[Path]) -> LoadResult:
    """Load and validate files and directories; never raises on bad content."""
    result = LoadResult()
    result.files = expand_paths(paths, result.problems)
    digest = hashlib.sha256()
    cwd = Path.cwd().resolve()
    for path in sorted(result.files, key=lambda p: (p.name, str(p))):
        name = display_path(path, cwd)
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.problems.append(Problem(Location(name, 0), f"cannot read: {exc}"))
            continue
        # basename + content: the version does not depend on where the repo lives
        digest.update(path.name.encode() + b"\0" + data + b"\0")
        services, problems = parse_text(text, name)
        result.services.extend(services)
        result.problems.extend(problems)
    result.digest = "sha256:" + digest.hexdigest()[:16]
    result.problems.extend(cross_check(result.services))
    return result


def parse_text(text: str, filename: str) -> tuple[list[Service], list[Problem]]:
    """Parse one catalog file's text. Returns the valid services and all problems."""
    parser = _FileParser(filename)
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return [], [Problem(Location(filename, line), f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return [], [Problem(Location(filename, 0), f"invalid YAML: {exc}")]
    if root is None:
        return [], [Problem(Location(filename, 1), "empty file: expected 'services:'")]
    services = parser.parse_root(root)
    return services, sorted(parser.problems, key=lambda p: p.location.line)


def cross_check(services: Sequence[Service]) -> list[Problem]:
    """Problems that need the whole catalog: duplicate ids and host patterns."""
    problems: list[Problem] = []
    ids: dict[str, Service] = {}
    for svc in services:
        first = ids.setdefault(svc.id, svc)
        if first is not svc:
            problems.append(
                Problem(
                    _loc(svc.location),
                    f"duplicate service id '{svc.id}' (first at {first.location})",
                )
            )
    # a path-restricted pattern is keyed per prefix: the same name may appear
    # once bare and once per path prefix, but never twice for the same traffic
    seen: dict[tuple[str, str, str], tuple[Service, HostPattern]] = {}
    for svc in services:
        for pat in svc.hosts:
            for prefix in pat.paths or ("",):
                key = (pat.kind, pat.value, prefix)
                prev = seen.setdefault(key, (svc, pat))
                if prev[1] is not pat:
                    what = f" path '{prefix}'" if prefix else ""
                    problems.append(
                        Problem(
                            _loc(pat.location),
                            f"service '{svc.id}': duplicate host {pat.kind} '{pat.value}'{what} "
                            f"(already in service '{prev[0].id}' at {prev[1].location})",
                        )
                    )
    problems.extend(_check_ip_overlaps(services))
    return problems


def _check_ip_overlaps(services: Sequence[Service]) -> list[Problem]:
    """Two entries claiming overlapping addresses make an IP match ambiguous."""
    problems: list[Problem] = []
    nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Service, IpRange]] = []
    for svc in services:
        for rng in svc.ip_ranges:
            nets.append((ipaddress.ip_network(rng.cidr), svc, rng))
    # sort by (version, first address); an overlap then shows up between neighbours
    # or with the widest range still open, which the running max tracks
    nets.sort(key=lambda t: (t[0].version, int(t[0].network_address), -t[0].prefixlen))
    open_: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Service, IpRange] | None = None
    for cur in nets:
        net, svc, rng = cur
        if open_ is not None and open_[0].version == net.version and (
            int(net.network_address) <= int(open_[0].broadcast_address)
        ):
            prev_net, prev_svc, prev_rng = open_
            problems.append(
                Problem(
                    _loc(rng.location),
                    f"service '{svc.id}': ip range {net} overlaps {prev_net} "
                    f"(service '{prev_svc.id}' at {prev_rng.location})",
                )
            )
            if int(net.broadcast_address) <= int(prev_net.broadcast_address):
                continue
        open_ = cur
    return problems


def _loc(location: Location | None) -> Location:
    return location if location is not None else Location("?", 0)


class _FileParser:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []

    def at(self, node: yaml.Node) -> Location:
        return Location(self.filename, node.start_mark.line + 1)

    def error(self, node: yaml.Node, message: str, ctx: str = "") -> None:
        self.problems.append(Problem(self.at(node), f"{ctx}{message}"))

    def mapping(
        self, node: yaml.Node, allowed: frozenset[str], ctx: str, what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Mapping node -> {key: (key node, value node)}; flags bad/unknown/duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping", ctx)
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode) or knode.tag != _STR:
                self.error(knode, "keys must be strings", ctx)
                continue
            key = knode.value
            if key not in allowed:
                self.error(knode, f"unknown key '{key}' in {what}", ctx)
            elif key in out:
                self.error(knode, f"duplicate key '{key}' in {what}", ctx)
            else:
                out[key] = (knode, vnode)
        return out

    def string(self, node: yaml.Node, ctx: str, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            self.error(node, f"{what} must be a string", ctx)
            return None
        value: str = node.value
        if not value.strip():
            self.error(node, f"{what} must not be empty", ctx)
            return None
        return value

    def sequence(self, node: yaml.Node, ctx: str, what: str, item: str) -> list[yaml.Node]:
        """A list node's items; flags a non-list and an empty list."""
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{what} must be a list", ctx)
            return []
        if not node.value:
            self.error(node, f"{what} must have at least one {item}", ctx)
        items: list[yaml.Node] = node.value
        return items

    def string_list(self, node: yaml.Node, ctx: str, what: str) -> list[tuple[str, yaml.Node]]:
        out: list[tuple[str, yaml.Node]] = []
        for item in self.sequence(node, ctx, what, "item"):
            value = self.string(item, ctx, f"{what} item")
            if value is not None:
                out.append((value, item))
        return out

    def parse_root(self, root: yaml.Node) -> list[Service]:
        top = self.mapping(root, FILE_KEYS, "", "file")
        if top is None:
            return []
        vendor: str | None = None
        if "vendor" in top:
            vendor = self.string(top["vendor"][1], "", "'vendor'")
        if "services" not in top:
            self.error(root, "missing 'services:' list")
            return []
        seq = top["services"][1]
        if not isinstance(seq, yaml.SequenceNode):
            self.error(seq, "'services' must be a list")
            return []
        services = []
        for idx, node in enumerate(seq.value, 1):
            svc = self.parse_service(node, idx, vendor)
            if svc is not None:
                services.append(svc)
        return services

    def parse_service(self, node: yaml.Node, idx: int, file_vendor: str | None) -> Service | None:
        before = len(self.problems)
        ctx = f"service #{idx}: "
        if isinstance(node, yaml.MappingNode):  # name the service in every message
            for knode, vnode in node.value:
                if knode.value == "id" and isinstance(vnode, yaml.ScalarNode) and vnode.value:
                    ctx = f"service '{vnode.value}': "
                    break
        fields = self.mapping(node, SERVICE_KEYS, ctx, "service")
        if fields is None:
            return None
        sid: str | None = None
        if "id" in fields:
            sid = self.string(fields["id"][1], ctx, "'id'")
            if sid is not None and not ID_RE.fullmatch(sid):
                self.error(fields["id"][1], f"id '{sid}' is not kebab-case", ctx)
        for key in ("id", "name", "category", "hosts", "references", "examples"):
            if key not in fields:
                self.error(node, f"missing '{key}'", ctx)
        name = self.string(fields["name"][1], ctx, "'name'") if "name" in fields else None
        vendor = file_vendor
        if "vendor" in fields:
            vendor = self.string(fields["vendor"][1], ctx, "'vendor'")
        elif file_vendor is None:
            self.error(node, "missing 'vendor' (set it per entry or at the top of the file)", ctx)
        category = self.enum(fields, "category", Category, ctx)
        risk = self.enum(fields, "risk", Risk, ctx)
        notes = self.string(fields["notes"][1], ctx, "'notes'") if "notes" in fields else None
        hosts = self.parse_hosts(fields["hosts"][1], ctx) if "hosts" in fields else []
        ranges = self.parse_ip_ranges(fields["ip_ranges"][1], ctx) if "ip_ranges" in fields else []
        refs: list[str] = []
        if "references" in fields:
            for ref, rnode in self.string_list(fields["references"][1], ctx, "'references'"):
                if URL_RE.fullmatch(ref):
                    refs.append(ref)
                else:
                    self.error(rnode, f"reference '{ref}' is not an http(s) URL", ctx)
        ex_match: list[str] = []
        ex_nomatch: list[str] = []
        if "examples" in fields:
            ex = self.mapping(fields["examples"][1], EXAMPLE_KEYS, ctx, "examples")
            if ex is not None:
                for key, dest in (("match", ex_match), ("nomatch", ex_nomatch)):
                    if key in ex:
                        lst = self.string_list(ex[key][1], ctx, f"'examples.{key}'")
                        dest.extend(v for v, _ in lst)
                    else:
                        self.error(fields["examples"][1], f"missing 'examples.{key}'", ctx)
        if len(self.problems) != before:
            return None
        assert sid is not None and name is not None and vendor is not None
        assert category is not None
        return Service(
            id=sid,
            name=name,
            vendor=vendor,
            category=category,
            hosts=tuple(hosts),
            references=tuple(refs),
            examples_match=tuple(ex_match),
            examples_nomatch=tuple(ex_nomatch),
            risk=risk,
            notes=notes,
            location=self.at(node),
            ip_ranges=tuple(ranges),
        )

    def enum(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, enum: type[_E], ctx: str
    ) -> _E | None:
        if key not in fields:
            return None
        vnode = fields[key][1]
        value = self.string(vnode, ctx, f"'{key}'")
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            self.error(vnode, f"unknown {key} '{value}' (one of: {allowed})", ctx)
            return None

    def parse_hosts(self, node: yaml.Node, ctx: str) -> list[HostPattern]:
        out: list[HostPattern] = []
        for item in self.sequence(node, ctx, "'hosts'", "pattern"):
            fields = self.mapping(item, HOST_KEYS, ctx, "host pattern")
            if fields is None:
                continue
            kinds = [k for k in ("exact", "suffix") if k in fields]
            if len(kinds) != 1:
                self.error(item, "host pattern needs exactly one of 'exact' or 'suffix'", ctx)
                continue
            kind: PatternKind = "exact" if kinds[0] == "exact" else "suffix"
            vnode = fields[kind][1]
            value = self.string(vnode, ctx, f"'{kind}'")
            ok = value is not None
            if value is not None:
                if value != value.lower() or value.endswith("."):
                    msg = f"host '{value}' must be lower-case without a trailing dot"
                    self.error(vnode, msg, ctx)
                    ok = False
                elif not is_hostname(value):
                    self.error(vnode, f"host '{value}' is not a valid DNS name", ctx)
                    ok = False
                elif kind == "suffix" and "." not in value:
                    self.error(vnode, f"suffix '{value}' would match a whole TLD", ctx)
                    ok = False
            shared = False
            if "shared" in fields:
                snode = fields["shared"][1]
                if isinstance(snode, yaml.ScalarNode) and snode.tag == _BOOL:
                    shared = snode.value.lower() in ("true", "yes", "on")
                else:
                    self.error(snode, "'shared' must be true or false", ctx)
                    ok = False
            role = self.enum(fields, "role", Role, ctx)
            if "role" in fields and role is None:
                ok = False
            paths: tuple[str, ...] = ()
            if "paths" in fields:
                got = self.parse_paths(fields["paths"][1], ctx)
                if got is None:
                    ok = False
                else:
                    paths = got
            if ok and value is not None:
                out.append(HostPattern(kind, value, role, shared, self.at(item), paths))
        return out

    def parse_paths(self, node: yaml.Node, ctx: str) -> tuple[str, ...] | None:
        """``paths: ["/mcp/"]``: absolute HTTP path prefixes, no query or fragment."""
        before = len(self.problems)
        items = self.string_list(node, ctx, "'paths'")
        seen: set[str] = set()
        for value, vnode in items:
            if not PATH_RE.fullmatch(value):
                self.error(
                    vnode,
                    f"path '{value}' must start with '/' and hold no spaces, '?' or '#'",
                    ctx,
                )
            elif value in seen:
                self.error(vnode, f"duplicate path '{value}'", ctx)
            seen.add(value)
        if len(self.problems) != before:
            return None
        # longest first: the index tries the most specific prefix first
        return tuple(sorted(seen, key=lambda p: (-len(p), p)))

    def parse_ip_ranges(self, node: yaml.Node, ctx: str) -> list[IpRange]:
        """``ip_ranges: [{cidr: 160.79.104.0/23, role: api, source: URL}]``."""
        out: list[IpRange] = []
        seen: set[str] = set()
        for item in self.sequence(node, ctx, "'ip_ranges'", "range"):
            fields = self.mapping(item, IP_RANGE_KEYS, ctx, "ip range")
            if fields is None:
                continue
            ok = True
            for key in ("cidr", "source"):
                if key not in fields:
                    self.error(item, f"ip range needs '{key}'", ctx)
                    ok = False
            cidr: str | None = None
            if "cidr" in fields:
                cnode = fields["cidr"][1]
                raw = self.string(cnode, ctx, "'cidr'")
                if raw is None:
                    ok = False
                else:
                    try:
                        cidr = str(ipaddress.ip_network(raw.strip(), strict=True))
                    except ValueError as exc:
                        self.error(cnode, f"cidr '{raw}' is not a network: {exc}", ctx)
                        ok = False
                    else:
                        if "/" not in raw:
                            self.error(cnode, f"cidr '{raw}' needs a prefix length", ctx)
                            ok = False
                        elif cidr in seen:
                            self.error(cnode, f"duplicate cidr '{cidr}'", ctx)
                            ok = False
                        elif ipaddress.ip_network(cidr).prefixlen == 0:
                            self.error(cnode, f"cidr '{raw}' covers every address", ctx)
                            ok = False
            source: str | None = None
            if "source" in fields:
                snode = fields["source"][1]
                source = self.string(snode, ctx, "'source'")
                if source is not None and not URL_RE.fullmatch(source):
                    self.error(snode, f"source '{source}' is not an http(s) URL", ctx)
                    ok = False
            role = self.enum(fields, "role", Role, ctx)
            if "role" in fields and role is None:
                ok = False
            if ok and cidr is not None and source is not None:
                seen.add(cidr)
                out.append(IpRange(cidr, role, source, self.at(item)))
        return out
