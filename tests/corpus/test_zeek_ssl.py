"""Differential test: our TLS SNIs vs Zeek's ssl.log ``server_name``.

For every Zeek btest baseline ``ssl.log`` in the corpus, the set of SNIs of our
TCP ClientHellos over the baseline's trace(s) (a multi-trace test: the union)
must equal the set of Zeek's ``server_name`` values ('-' and '(empty)' are
"none"). Names are compared lower-cased without a trailing dot.

QUIC: Zeek logs QUIC handshakes in ssl.log too; they are compared with our
``quic.client_hello`` SNIs. Should the build emit no QUIC ClientHello at all,
rows whose connection tshark shows as QUIC are set aside (see
test_tshark_diff.quic_wired). Other exceptions are
listed in tests/data/corpus_disagreements.yaml under ``zeek_ssl:`` keyed by the
baseline path; a listed baseline that now agrees fails (stale entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.corpus.conftest import TSHARK_DIR, HuntResult
from tests.corpus.test_tshark_diff import (
    CATEGORIES,
    host_name,
    is_client_hello,
    is_quic,
    load_listed,
    quic_wired,
    read_tsv,
)

pytestmark = pytest.mark.corpus

_NONE = ("-", "(empty)", "")
Tuple4 = tuple[str, str, str, str]


def read_zeek_tsv(path: Path) -> list[dict[str, str]]:
    """A Zeek ASCII log: ``#fields`` names the tab-separated columns."""
    fields: list[str] = []
    rows: list[dict[str, str]] = []
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def quic_tuples(rel: str) -> set[Tuple4]:
    """(orig ip, orig port, resp ip, resp port) of the QUIC packets tshark saw."""
    out: set[Tuple4] = set()
    p = TSHARK_DIR / f"{rel}.tsv"
    if not p.is_file():
        return out
    for row in read_tsv(p):
        if "quic" not in row.get("frame.protocols", "").split(":"):
            continue
        # the innermost header is the last of a comma-separated list (tunnels)
        src = (row.get("ip.src") or row.get("ipv6.src") or "").split(",")[-1]
        dst = (row.get("ip.dst") or row.get("ipv6.dst") or "").split(",")[-1]
        sp = row.get("udp.srcport", "").split(",")[-1]
        dp = row.get("udp.dstport", "").split(",")[-1]
        out.add((src, sp, dst, dp))
        out.add((dst, dp, src, sp))
    return out


@dataclass(frozen=True, slots=True)
class Baseline:
    log: str  # corpus-relative path of the ssl.log
    traces: tuple[str, ...]  # corpus-relative capture paths


def ssl_baselines(manifest: dict[str, Any]) -> list[Baseline]:
    by_group = {r["group"]: r["file"] for r in manifest["files"] if r["role"] == "capture"}
    out = []
    for r in manifest["files"]:
        if r["role"] == "peer-output:zeek-baseline" and r["file"].endswith("/ssl.log"):
            traces = tuple(by_group[g] for g in r["group"].split(","))
            out.append(Baseline(r["file"], traces))
    return sorted(out, key=lambda b: b.log)


def zeek_names(b: Baseline, corpus: Path, with_quic: bool) -> set[str]:
    quic: set[Tuple4] = set()
    if not with_quic:
        for t in b.traces:
            quic |= quic_tuples(t)
    names = set()
    for row in read_zeek_tsv(corpus / b.log):
        name = row.get("server_name", "-")
        key = (row.get("id.orig_h", ""), row.get("id.orig_p", ""),
               row.get("id.resp_h", ""), row.get("id.resp_p", ""))
        if name not in _NONE and key not in quic:
            names.add(host_name(name))
    return names


def our_names(results: list[HuntResult], with_quic: bool) -> set[str]:
    return {host_name(o["sni"]) for r in results for o in r.observations
            if is_client_hello(o) and o["sni"] and (with_quic or not is_quic(o))}


@pytest.fixture(scope="module")
def baselines(manifest: dict[str, Any]) -> list[Baseline]:
    return ssl_baselines(manifest)


def test_baselines_found(baselines: list[Baseline]) -> None:
    assert len(baselines) == 47
    assert any(len(b.traces) > 1 for b in baselines)


def test_sni_equals_zeek_server_name(baselines: list[Baseline], corpus: Path,
                                     hunt: Callable[[str], HuntResult]) -> None:
    wired = quic_wired(hunt(t) for b in baselines for t in b.traces)
    listed = load_listed("zeek_ssl")
    for entry in listed.values():
        assert entry.get("category") in CATEGORIES and str(entry.get("reason", "")).strip()
    diffs: dict[str, str] = {}
    for b in baselines:
        ours = our_names([hunt(t) for t in b.traces], wired)
        theirs = zeek_names(b, corpus, wired)
        if ours != theirs:
            diffs[b.log] = (f"{b.log} ({', '.join(b.traces)}): zeek-only="
                            f"{sorted(theirs - ours)} ours-only={sorted(ours - theirs)}")
    unexplained = [d for log, d in sorted(diffs.items()) if log not in listed]
    stale = sorted(log for log in listed if log not in diffs)
    assert not unexplained, "ssl.log baselines disagreeing, not in the yaml:\n" + "\n".join(
        unexplained)
    assert not stale, f"zeek_ssl entries that now agree (remove them): {stale}"


def test_quic_rows_are_recognised(baselines: list[Baseline], corpus: Path) -> None:
    """The QUIC set-aside must actually find the QUIC rows (or it hides nothing)."""
    quic_logs = [b for b in baselines if ".protocols.quic." in b.log]
    named = [b for b in quic_logs if zeek_names(b, corpus, with_quic=True)]
    assert len(named) >= 9  # 9 of the 14 QUIC baselines log a server_name
    for b in quic_logs:
        assert not zeek_names(b, corpus, with_quic=False), b.log


def test_quic_server_names_are_compared(baselines: list[Baseline], corpus: Path,
                                        hunt: Callable[[str], HuntResult]) -> None:
    """Zeek's QUIC server_names really take part (else a reminder xfails)."""
    quic = [b for b in baselines
            if zeek_names(b, corpus, True) - zeek_names(b, corpus, False)]
    assert len(quic) >= 9
    if not quic_wired(hunt(t) for b in baselines for t in b.traces):
        pytest.xfail(f"QUIC decoder not wired into the pipeline: {len(quic)} Zeek QUIC "
                     "baselines not compared")
    seen = [b for b in quic if our_names([hunt(t) for t in b.traces], with_quic=True)]
    assert len(seen) >= len(quic) - 3  # the 3 quic-go interop traces are PPP (see the yaml)
