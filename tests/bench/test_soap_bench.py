"""The SOAP benchmark's helpers: its SMEV 3 bundle is one the sidecar accepts and routes the real
request with, its invalid variant is refused by the XSD, schema copies are distinct, and the fast
upstream answers POSTs with the SOAP answer."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from proxy.payloads import compile_schemas
from proxy.policy import Request, evaluate
from proxy.soap.message import read_message

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


soap_bench = _load("soap_bench")  # imports bench/sidecar_bench.py itself


def test_smev3_bundle_is_accepted_and_routes_the_real_request(tmp_path: Path) -> None:
    bundle = soap_bench.compile_registry(tmp_path)
    active = soap_bench.load_active(bundle, tmp_path / "keys" / "operator.pub")
    body = soap_bench.SMEV3_REQUEST.read_bytes()
    request = Request(method="POST", path=soap_bench.SOAP_PATH, body=body,
                      content_type=soap_bench.SOAP_CONTENT_TYPE, soap_actions=(soap_bench.SOAP_ACTION,))
    decision = evaluate(active.policy, "ved1", request, datetime.now(UTC).date())
    assert decision.allowed and decision.operation == "publicPrintOut"
    assert decision.message is not None and decision.message.content.payload is not None
    assert decision.definition is not None
    key = decision.definition.request_schema
    assert active.payloads.check_xml(key, decision.message.content.payload) is None
    invalid = read_message(soap_bench.invalid_request(body), soap_bench.SOAP_CONTENT_TYPE,
                           [soap_bench.SOAP_ACTION], "smev3")
    violation = active.payloads.check_xml(key, invalid.content.payload)
    assert violation is not None and "ExpertiseResultNumber" in violation.message  # the missing element
    answer = read_message(soap_bench.SOAP_ANSWER, soap_bench.SOAP_CONTENT_TYPE, [], "smev3")
    assert answer.content.transport.endswith("}SendRequestResponse")


def test_schema_copies_are_distinct_sets_that_compile_and_load(tmp_path: Path) -> None:
    base = json.loads(soap_bench.compile_registry(tmp_path).read_bytes())["signed"]
    signed = soap_bench.with_smev3_services(base, 3)
    assert len(signed["schemas"]) == len(base["schemas"]) + 3
    assert len(signed["schema_files"]) == len(base["schema_files"]) + 6
    keys = {signed["services"][f"SID0003{n}"]["operations"]["publicPrintOut"]["request_schema"]
            for n in (200, 201, 202)}
    assert len(keys) == 3 and not keys & set(base["schemas"])
    assert len(compile_schemas(signed).compiled) == len(signed["schemas"])
    bundle = soap_bench.write_signed(tmp_path, "copies.json", signed)
    active = soap_bench.load_active(bundle, tmp_path / "keys" / "operator.pub")
    assert {"SID0003200", "SID0003202"} <= set(active.policy.services)


def test_fast_upstream_answers_posts_with_the_soap_answer(tmp_path: Path) -> None:
    answer = tmp_path / "answer.xml"
    answer.write_bytes(soap_bench.SOAP_ANSWER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(port), "20",
                             str(answer)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the upstream did not listen"
                time.sleep(0.05)
        with conn:
            conn.sendall(b"POST /SID0003004 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not (b"SendRequestResponse" in data and b'"answer":"ok"' in data):
                chunk = conn.recv(65536)
                assert chunk, f"connection closed after {data!r}"
                data += chunk
        assert data.index(b"text/xml") < data.index(b"application/json")
    finally:
        proc.terminate()
        proc.wait(10)

