"""`shadowai hunt` on Zeek logs: detection by content, and the same findings from TSV and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensor.cli import main

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
WRCCDC = CORPUS / "zeek-wrccdc-logs"

# names that are frequent in the WRCCDC logs play AI services, so the comparison has
# findings to compare (the real catalog finds nothing there, as it should)
DECOY = """\
vendor: WRCCDC Decoy
services:
  - id: decoy-ise
    name: Decoy ISE
    category: chat-assistant
    hosts:
      - suffix: wrccdc.org
      - suffix: cpp.edu
    references: [https://example.org/decoy]
    examples: {match: [ise.wrccdc.org], nomatch: [wrccdc.org.evil.net]}
  - id: decoy-google
    name: Decoy Google
    category: llm-api
    hosts:
      - suffix: google.com
      - exact: vcsa.vmware.com
    references: [https://example.org/decoy]
    examples: {match: [docs.google.com], nomatch: [google.co]}
"""


def _hunt(tmp_path: Path, name: str, *inputs: Path) -> tuple[list[dict], str]:
    sig = tmp_path / "sig" / "services"
    sig.mkdir(parents=True, exist_ok=True)
    (sig / "decoy.yaml").write_text(DECOY)
    out = tmp_path / f"{name}.jsonl"
    r = CliRunner().invoke(main, ["hunt", *map(str, inputs), "-s", str(tmp_path / "sig"),
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    return [json.loads(x) for x in out.read_text().splitlines()], r.stderr


@pytest.mark.corpus
def test_wrccdc_tsv_and_json_give_identical_findings(tmp_path):
    if not WRCCDC.is_dir():
        pytest.skip("shared corpus absent")
    tsv, err_tsv = _hunt(tmp_path, "tsv", WRCCDC / "zeek-default")
    js, err_js = _hunt(tmp_path, "json", WRCCDC / "zeek-json")
    assert "reading as zeek-tsv" in err_tsv and "reading as zeek-json" in err_js
    assert len(tsv) > 20
    assert {f["service"]["id"] for f in tsv} >= {"decoy-ise", "decoy-google"}
    assert {e["kind"] for f in tsv for e in f["evidence"]} >= {"tls.sni", "dns.query"}
    # the JSON logs carry the same events: the same findings, byte for byte
    assert tsv == js


def test_hunt_says_what_it_took_each_input_for(tmp_path):
    log = tmp_path / "ssl.log"
    log.write_text(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        "#path\tssl\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\t"
        "server_name\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\n"
        "1700000000.000000\tCabc\t10.0.0.5\t50000\t10.9.9.9\t443\tTLSv13\tapi.openai.com\n")
    r = CliRunner().invoke(main, ["hunt", str(log), "-o", str(tmp_path / "f.jsonl")])
    assert r.exit_code == 0, r.output
    assert "reading as zeek-tsv" in r.stderr
    [f] = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert (f["client"]["ip"], f["service"]["id"]) == ("10.0.0.5", "openai-api")
    assert f["attributed_by"] == ["tls.sni"]
