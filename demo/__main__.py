"""`make demo`: the whole path on the example registry, end to end, in about ten seconds.

1. validate and compile the example registry (seed 001 Appendix 2) with a fresh operator key;
2. start a stand-in for Ведомство 3's system and Ведомство 3's sidecar in front of it;
3. call it over mTLS as Ведомство 1, 2 and 4 (and with no certificate): allowed and denied calls,
   REST, plain SOAP and SMEV 3 (the real ЕГРЗ request, routed by its kind of information and
   validated against the real ЕГРЗ XSD);
4. show the journal, verify its hash chain and signatures, and print the owner's statistics.

Every step runs the real CLI (`reestr`, `reestr-sidecar`) the way an operator or agency would,
and prints the command first. Exit 0 only when every decision is the expected one.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PKI = ROOT / "demo" / "pki"
OUT = ROOT / "demo-out"
BIN = Path(sys.executable).parent

SOAP = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
                  xmlns:ref="urn:ved3:reference">
  <soapenv:Body><ref:GetReferenceRequest><ref:code>OKATO</ref:code></ref:GetReferenceRequest></soapenv:Body>
</soapenv:Envelope>"""

# A real SMEV 3 SendRequestRequest (GIS ЕГРЗ, вид сведений PublicPrintOut), byte for byte as signed.
SMEV3 = (ROOT / "tests/data/real/gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml").read_bytes()
SMEV3_HEADERS = {"SOAPAction": "urn:SendRequest", "Content-Type": "text/xml; charset=utf-8"}
_PRINT_OUT = SMEV3[SMEV3.index(b"<ns0:PublicPrintOutRequest"):SMEV3.index(b"</ns0:PublicPrintOutRequest>") + 28]
# the same envelope carrying another kind of information, and a PublicPrintOut missing its number
SMEV3_STATUS = SMEV3.replace(_PRINT_OUT, b'<s:ExpertiseStatusRequest xmlns:s="urn://reestr-example/'
                             b'egrz-expertise-status/1.0.0"><s:ExpertiseResultNumber>00-1-2-3-000010-2000'
                             b"</s:ExpertiseResultNumber></s:ExpertiseStatusRequest>")
SMEV3_INVALID = SMEV3.replace(_PRINT_OUT, b'<ns0:PublicPrintOutRequest xmlns:ns0="urn://x-artefacts-gis-'
                              b'ergz-public/2.0.0"/>')

# (who, method, path, extra headers, body, expected status, what the row shows)
CALLS = [
    ("ved1", "GET", "/SID0003001/applicants/42", {}, None, 200, "Ведомство 1: full access to А"),
    ("ved1", "POST", "/SID0003001/applicants/search", {}, b'{"snils":"112-233-445 95"}', 200,
     "Ведомство 1: full access covers operation2"),
    ("ved2", "GET", "/SID0003001/applicants/42", {}, None, 200, "Ведомство 2: operation1 granted"),
    ("ved2", "GET", "/SID0003001/requests/7/status", {}, None, 200, "Ведомство 2: operation3 granted"),
    ("ved2", "POST", "/SID0003001/applicants/search", {}, b'{"snils":"112-233-445 95"}', 403,
     "Ведомство 2: operation2 not in its sheet"),
    ("ved2", "GET", "/SID0003002/permits/77/validity", {}, None, 403, "Ведомство 2: no grant for Б"),
    ("ved1", "GET", "/SID0003002/permits/77/validity", {}, None, 200, "Ведомство 1: operation2 of Б"),
    ("ved1", "GET", "/SID0003002/permits/77", {}, None, 403, "Ведомство 1: operation1 of Б not granted"),
    ("ved4", "POST", "/SID0003003", {"SOAPAction": "urn:ved3:reference:get",
                                     "Content-Type": "text/xml; charset=utf-8"}, SOAP.encode(), 200,
     "Ведомство 4: full access to SOAP service В"),
    ("ved2", "POST", "/SID0003003", {"SOAPAction": "urn:ved3:reference:get",
                                     "Content-Type": "text/xml; charset=utf-8"}, SOAP.encode(), 403,
     "Ведомство 2: no grant for В (SOAP Fault)"),
    ("ved1", "POST", "/SID0003004", SMEV3_HEADERS, SMEV3, 200,
     "Ведомство 1: SMEV 3 PublicPrintOut, ЕГРЗ XSD valid"),
    ("ved1", "POST", "/SID0003004", SMEV3_HEADERS, SMEV3_STATUS, 403,
     "Ведомство 1: same envelope, another вид сведений"),
    ("ved1", "POST", "/SID0003004", SMEV3_HEADERS, SMEV3_INVALID, 400,
     "Ведомство 1: payload without its required elements"),
    ("ved1", "GET", "/SID0009999/anything", {}, None, 404, "unknown SID"),
    (None, "GET", "/SID0003001/applicants/42", {}, None, 403, "no client certificate"),
]


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "keys").mkdir(parents=True)
    _step("1. The operator validates and compiles the registry")
    _run("reestr", "validate", "registry")
    _run("reestr", "keygen", "--out", str(OUT / "keys" / "operator"))
    _run("reestr", "keygen", "--out", str(OUT / "keys" / "ved3-sidecar"))
    _run("reestr", "compile", "registry", "--key", str(OUT / "keys" / "operator.key"),
         "--out", str(OUT / "bundles"), "--expires-in", "2h")
    _run("reestr", "verify", str(OUT / "bundles" / "ved3.json"),
         "--trusted", str(OUT / "keys" / "operator.pub"), "--audience", "ved3")
    _archive()

    _step("2. Ведомство 3 runs its system and its sidecar")
    upstream = _start_upstream()
    ports = {"listen": _free_port(), "admin": _free_port()}
    config = _write_config(upstream.server_address[1], ports)
    print(f"$ reestr-sidecar run --config {config.relative_to(ROOT)}")
    sidecar = subprocess.Popen([str(BIN / "reestr-sidecar"), "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_ready(ports["admin"], sidecar)
        _step("3. Calls through the sidecar (mTLS, certificates from demo/pki)")
        failures = _make_calls(ports["listen"])
    finally:
        sidecar.terminate()
        try:
            sidecar.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sidecar.kill()
        upstream.shutdown()
    journal = OUT / "ved3" / "journal.sqlite"
    _step("4. The journal: every request and response, hash-chained and signed")
    _show_journal(journal)
    verified = _run("reestr-sidecar", "journal", "verify", str(journal),
                    "--key", str(OUT / "keys" / "ved3-sidecar.pub"), check=False)
    _run("reestr-sidecar", "stats", "--journal", str(journal), "--provider", "ved3")
    _step("5. The audit chain: from a journal record to the approvals of the rule that decided it")
    audited = _run("reestr", "audit", "--journal", str(journal), "--id", "1", "--archive", str(OUT / "archive"),
                   check=False)
    _run("reestr", "audit", "--journal", str(journal), "--grant", "ved1", "SID0003001")
    verified = verified if audited.returncode == 0 else audited
    if failures or verified.returncode != 0:
        print(f"\nDEMO FAILED: {failures} unexpected decision(s), journal verify exit {verified.returncode}")
        return 1
    print(f"\nDemo OK: {len(CALLS)} calls decided as expected; journal verified. Files in {OUT.name}/")
    return 0


def _archive() -> None:
    """What publish does after signing: archive the bundles by serial with their audit record.

    In CI the pull request's plan, reviews and team members come from GitHub's API; here the
    recorded payloads of tests/data/github stand in for pull request 42, approved on the commit
    the bundles were compiled from (the plan of that commit against itself names the operator)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    recorded = ROOT / "tests" / "data" / "github"
    reviews = (recorded / "reviews-approved.json").read_text(encoding="utf-8")
    (OUT / "reviews.json").write_text(reviews.replace('"HEAD"', f'"{commit}"').replace('"FIRST"', f'"{"0" * 40}"'),
                                      encoding="utf-8")
    members = {f"@reestr-registry/{team}": [u["login"] for u in json.loads(
        (recorded / f"team-members-{team}.json").read_text(encoding="utf-8"))] for team in ("citto", "ved2", "ved3")}
    (OUT / "members.json").write_text(json.dumps(members), encoding="utf-8")
    plan = _run("reestr", "plan", "--base", commit, "--head", commit, "--format", "json", quiet=True)
    (OUT / "plan.json").write_text(plan.stdout, encoding="utf-8")
    _run("reestr", "archive", "--bundles", str(OUT / "bundles"), "--archive", str(OUT / "archive"),
         "--pr", "42", "--plan", str(OUT / "plan.json"), "--reviews", str(OUT / "reviews.json"),
         "--members", str(OUT / "members.json"), "--head", commit, "--triggered-by", "orlov-citto")


def _make_calls(port: int) -> int:
    failures = 0
    print(f"{'caller':<7} {'call':<44} {'status':>6}  {'decision':<30} journal  expected")
    for who, method, path, headers, body, expected, note in CALLS:
        with httpx.Client(verify=_tls(who), timeout=10) as client:
            r = client.request(method, f"https://127.0.0.1:{port}{path}", headers=headers, content=body)
        code = _reason(r)
        ok = r.status_code == expected
        failures += not ok
        print(f"{who or '-':<7} {method + ' ' + path:<44} {r.status_code:>6}  {code:<30} "
              f"{r.headers.get('reestr-journal-id', '-'):>7}  {'ok' if ok else 'UNEXPECTED'}  # {note}")
    return failures


def _reason(r: httpx.Response) -> str:
    if r.status_code < 400:
        return "allow"
    if "json" in r.headers.get("content-type", ""):
        return str(r.json().get("code", "?"))
    if "xml" in r.headers.get("content-type", ""):  # SOAP Fault: the code is in <detail>
        code = r.text.partition('<reestr:code xmlns:reestr="urn:reestr">')[2].partition("<")[0]
        return f"{code or '?'} (SOAP)"
    return r.reason_phrase


def _tls(who: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    if who:
        ctx.load_cert_chain(PKI / f"{who}.crt", PKI / f"{who}.key")
    return ctx


def _show_journal(journal: Path) -> None:
    exported = _run("reestr-sidecar", "journal", "export", str(journal), quiet=True)
    print(f"{'id':>3} {'kind':<8} {'consumer':<9} {'sid':<11} {'operation':<15} {'decision':<6} "
          f"{'reason':<22} {'status':>6} body-sha256")
    for line in exported.stdout.splitlines():
        rec = json.loads(line)
        print(f"{rec['id']:>3} {rec['kind']:<8} {rec['consumer'] or '-':<9} {rec['sid'] or '-':<11} "
              f"{rec['operation'] or '-':<15} {rec['decision']:<6} {rec['reason'] or '-':<22} "
              f"{rec['status'] or '-':>6} {(rec['body_sha256'] or '')[:16]}…")


def _write_config(upstream_port: int, ports: dict[str, int]) -> Path:
    state = OUT / "ved3"
    state.mkdir(parents=True, exist_ok=True)
    config = state / "sidecar.yaml"
    config.write_text(f"""\
participant: ved3
listen: {{host: 127.0.0.1, port: {ports["listen"]}}}
admin: {{host: 127.0.0.1, port: {ports["admin"]}}}
upstream: http://127.0.0.1:{upstream_port}
tls:
  server_bundle: {PKI / "ved3-server.pem"}
bundle:
  source: {OUT / "bundles" / "ved3.json"}
  trusted_keys: [{OUT / "keys" / "operator.pub"}]
state_dir: {state / "state"}
journal:
  path: {state / "journal.sqlite"}
  signing_key: {OUT / "keys" / "ved3-sidecar.key"}
""", encoding="utf-8")
    return config


class _Upstream(BaseHTTPRequestHandler):
    """Ведомство 3's system: answers every call with a small JSON or SOAP document."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/SID0003004"):  # SMEV 3: the transport's acknowledgement
            body = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                    b'<SendRequestResponse xmlns="urn://x-artefacts-smev-gov-ru/services/message-exchange/'
                    b'types/1.2"><MessageMetadata><MessageId>39f52a38-9a54-11ea-b23a-3316e2108089'
                    b"</MessageId></MessageMetadata></SendRequestResponse></soap:Body></soap:Envelope>")
            kind = "text/xml; charset=utf-8"
        elif self.path.startswith("/SID0003003"):
            body = (b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv='
                    b'"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                    b'<GetReferenceResponse xmlns="urn:ved3:reference"><name>OKATO</name>'
                    b'</GetReferenceResponse></soapenv:Body></soapenv:Envelope>')
            kind = "text/xml; charset=utf-8"
        else:
            body = json.dumps({"path": self.path, "answer": "сведения"}, ensure_ascii=False).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _start_upstream() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _wait_ready(admin_port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"sidecar exited with {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            r = httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=1)
            if r.status_code == 200:
                print(f"ready: {r.text.strip()}")
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("sidecar did not become ready in 30 s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _step(title: str) -> None:
    print(f"\n== {title} ==")


def _run(tool: str, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    shown = " ".join(a.replace(str(ROOT) + "/", "") for a in args)
    if not quiet:
        print(f"$ {tool} {shown}")
    result = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, cwd=ROOT)
    if not quiet:
        print((result.stdout + result.stderr).rstrip())
    if check and result.returncode != 0:
        sys.exit(f"`{tool} {shown}` failed with exit {result.returncode}")
    return result


if __name__ == "__main__":
    sys.exit(main())
