"""Signed-sidecar benchmark (issue 9, "Done when"): sidecar throughput with GOST signature checking
against the same service without it, in one run, on the real ~6 KB SMEV 3 request.

    .venv/bin/python bench/signed_sidecar_bench.py [--duration 8] [--warmup 2] [--connections 10,50]
        [--rounds 3] [--rate 700]

Needs `wrk`, `stunnel4` and OpenSSL's GOST engine (`make bench-signed` installs them). Everything
listens on and talks to 127.0.0.1 only; every process started is stopped at the end, also on
Ctrl-C, on failure or when `--deadline` passes. The machinery is `bench/sidecar_bench.py`'s and
`bench/soap_bench.py`'s (imported, not copied): wrk through a client-mode stunnel holding
Ведомство 1's certificate, CPU time from /proc (all threads, and the main thread alone), the run
with the median req/s of `--rounds` interleaved rounds.

ONE `reestr-sidecar run` process (journal FULL, replay window one hour) with Ведомство 3's bundle
as `reestr compile` makes it from the example registry, plus SID0003210: a copy of the SMEV 3
service SID0003004 with `signed_messages: true`, Ведомство 1 registered with a GOST R 34.10-2012
256 signing certificate made by OpenSSL's GOST engine for this run. Rows, each at every
connection count:

  (a-unsigned)  POST /SID0003004: parsed once, routed by the payload, XSD-validated, journaled,
                forwarded — no signature check (the service does not require one);
  (a-signed)    POST /SID0003210: the same, plus the GOST check of CallerInformationSystemSignature
                (SMEV transform, Streebog-256, the curve verify), the signer matched against the
                caller's registered signing certificates, and replay protection.

Replay protection refuses a message twice, and wrk repeats one body: so the real ЕГРЗ request is
signed beforehand with a distinct time-based MessageID each, `--rate` × seconds of bodies for every
wrk invocation (warm-up and measured runs alike; no body goes to the signed service twice), written
length-prefixed to one file per invocation, which the wrk Lua script reads and splits among its
threads. When a thread runs out it stops (the run then shows fewer requests and is flagged):
raise `--rate`. Both rows cycle through the same kind of bodies, so they differ only by the check.

Before any run: a signed body → 200; the same body again → 409 `replayed-message`; the body
changed after signing → 403 `signature-invalid`; the unsigned real request → 403
`signature-absent` on the signed service and 200 on the other. wrk counts non-2xx.
In-process after the runs: the GOST check alone on one parse (median CPU), and the signing.

Outputs (bundle, configs, logs, bodies, wrk raw output) go to bench/out/signed/.
"""

from __future__ import annotations

import argparse
import base64
import copy
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from lxml import etree  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sidecar_bench as sb
import soap_bench as sp
from sidecar_bench import (
    BIN,
    ROOT,
    WRK_LUA,
    Procs,
    Target,
    WrkResult,
    _loadavg,
    _median_run,
    _nproc,
    _wrk_version,
    cpu_seconds,
    free_port,
    wait_port,
    wait_ready,
    write_sidecar_config,
    write_stunnel_config,
    wrk,
)

from compiler.trust import format_time, generate_keypair
from proxy.soap.gost import certs, hashes
from proxy.soap.message import read_message
from proxy.soap.signatures import check_signatures, verdict
from proxy.soap.signing import KeyFileSigner, sign_smev3

OUT = ROOT / "bench" / "out" / "signed"
SIGNED_SID = "SID0003210"
ENGINE = sorted(Path("/usr/lib").glob("*/engines-3/gost.so"))

# each wrk thread takes every THREADS-th body of the file, from its own offset; a thread that has
# sent all of its bodies stops (its next request would be a replay)
BODIES_LUA = """
local PATH, THREADS = "{path}", {threads}
local counter = 0
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local mine, i = {{}}, 0
init = function(args)
  local f = assert(io.open(PATH, "rb"))
  local data = f:read("*a")
  f:close()
  local pos, j = 1, 0
  while pos <= #data do
    local nl = string.find(data, "\\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    if j % THREADS == (tid or 0) then mine[#mine + 1] = string.sub(data, nl + 1, nl + len) end
    j = j + 1
    pos = nl + 1 + len
  end
end
request = function()
  i = i + 1
  if i > #mine then
    wrk.thread:stop()
    i = #mine
  end
  return wrk.format("POST", nil, {{["Content-Type"] = "{content_type}", ["SOAPAction"] = '{action}'}}, mine[i])
end
"""


def gost_identity(out: Path) -> tuple[Path, bytes]:
    """A GOST R 34.10-2012 256 key and self-signed certificate made by OpenSSL's GOST engine."""
    conf = out / "openssl-gost.cnf"
    conf.write_text("openssl_conf = openssl_def\n[openssl_def]\nengines = engine_section\n"
                    "[engine_section]\ngost = gost_section\n[gost_section]\nengine_id = gost\n"
                    f"dynamic_path = {ENGINE[0]}\ndefault_algorithms = ALL\n")
    env = {**os.environ, "OPENSSL_CONF": str(conf)}
    key, cert = out / "keys" / "ved1-ep-ov.key", out / "keys" / "ved1-ep-ov.pem"
    sb.run(["openssl", "genpkey", "-engine", "gost", "-algorithm", "gost2012_256", "-pkeyopt", "paramset:A",
            "-out", str(key)], env=env)
    sb.run(["openssl", "req", "-x509", "-engine", "gost", "-key", str(key), "-subj", "/CN=ved1 ЭП-ОВ/O=reestr bench",
            "-days", "2", "-md_gost12_256", "-out", str(cert)], env=env)
    pem = cert.read_text()
    return key, base64.b64decode("".join(line for line in pem.splitlines() if "-----" not in line))


def with_signed_service(signed: dict[str, object], der: bytes) -> dict[str, object]:
    """Ведомство 3's `signed` plus SID0003210, the signed copy of SID0003004, Ведомство 1's
    signing certificate registered; a new serial, to be signed again."""
    signed = copy.deepcopy(signed)
    info = certs.read(der)
    services: dict[str, dict[str, object]] = signed["services"]  # type: ignore[assignment]
    service = copy.deepcopy(services[sp.SOAP_SID])
    service["signed_messages"] = True
    service["name"] = f"{service['name']} (подписанные сообщения)"
    service["callers"]["ved1"]["signing_certificates"] = [info.sha256]  # type: ignore[index]
    services[SIGNED_SID] = service
    table = signed.setdefault("signing_certificates", {})
    table[info.sha256] = {"participant": "ved1", "subject": info.subject,  # type: ignore[index]
                          "not_before": format_time(info.not_before), "not_after": format_time(info.not_after)}
    signed["serial"] = int(signed["serial"]) + 1  # type: ignore[call-overload]
    return signed


def unsigned_request() -> etree._Element:
    root = etree.fromstring(sp.SMEV3_REQUEST.read_bytes())
    (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
    holder.getparent().remove(holder)
    return root


def signed_body(template: etree._Element, signer: KeyFileSigner) -> bytes:
    root = copy.deepcopy(template)
    (mid,) = root.xpath("//*[local-name()='MessageID']")
    mid.text = str(uuid.uuid1())
    sign_smev3(root, signer)
    return bytes(etree.tostring(root, encoding="utf-8"))


def write_bodies(path: Path, count: int, template: etree._Element, signer: KeyFileSigner) -> None:
    with path.open("wb") as f:
        for _ in range(count):
            body = signed_body(template, signer)
            f.write(b"%d\n" % len(body) + body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds of each measured wrk run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run")
    ap.add_argument("--connections", default="10,50", help="comma-separated connection counts")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows the median")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--rate", type=int, default=700, help="signed bodies per second of each wrk run")
    ap.add_argument("--deadline", type=float, default=1800.0, help="overall cap in seconds")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",") if c.strip()]
    if not conns or min(conns) < 1 or max(conns) > 1000 or not 1 <= args.duration <= 120 \
            or not 0 <= args.warmup <= 30 or not 1 <= args.rounds <= 10 or not 10 <= args.rate <= 5000:
        ap.error("connections 1..1000, duration 1..120 s, warm-up 0..30 s, rounds 1..10, rate 10..5000")
    for tool in ("wrk", "stunnel", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install -y wrk stunnel4 openssl")
    if not ENGINE:
        sys.exit("OpenSSL's GOST engine not found: apt-get install -y libengine-gost-openssl")
    sb.OUT = OUT  # sidecar_bench's config writers put their files under its OUT: ours here
    return sb.guarded(lambda procs: _bench(args, conns, procs), args.deadline)


def _bench(args: argparse.Namespace, conns: list[int], procs: Procs) -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "keys").mkdir(parents=True)
    (OUT / "bodies").mkdir()
    wrk_log = OUT / "wrk.log"
    env_line = (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {sys.version.split()[0]} · "
                f"{_nproc()} cores · {_wrk_version()} · load average before: {_loadavg()}")
    print("== preparing: example registry compiled, SID0003210 (signed copy of SID0003004) added, "
          "ved1's GOST signing certificate made by OpenSSL", flush=True)
    generate_keypair(OUT / "keys" / "sidecar")
    key, der = gost_identity(OUT)
    signer = KeyFileSigner.load(key, der)
    bundle = sp.write_signed(OUT, "ved3-signed.json", with_signed_service(
        _signed_part(sp.compile_registry(OUT)), der))
    template = unsigned_request()

    invocations = [(c, rnd, key_, phase) for c in conns for rnd in range(args.rounds)
                   for key_ in ("a-unsigned", "a-signed") for phase in ("warmup", "run")
                   if phase == "run" or args.warmup > 0]
    per_second = {"warmup": args.warmup, "run": args.duration}
    t0 = time.process_time()
    files: dict[tuple[int, int, str, str], Path] = {}
    total = 0
    for inv in invocations:
        count = args.rate * per_second[inv[3]]
        path = OUT / "bodies" / f"{inv[2]}-c{inv[0]}-r{inv[1]}-{inv[3]}.bin"
        write_bodies(path, count, template, signer)
        files[inv] = path
        total += count
    sign_ms = (time.process_time() - t0) / total * 1000
    print(f"   {total:,} bodies signed, {len(files)} files ({sign_ms:.2f} ms CPU each)", flush=True)

    print("== starting the upstream, the sidecar, stunnel", flush=True)
    (OUT / "answer.xml").write_bytes(sp.SOAP_ANSWER)
    up_port = free_port()
    upstream = procs.add("upstream", subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(up_port), str(args.deadline),
         str(OUT / "answer.xml")], stdin=subprocess.DEVNULL))
    wait_port(up_port, upstream, "the upstream")
    config, listen, admin = write_sidecar_config("sidecar-full", "FULL", up_port, bundle)
    with config.open("a", encoding="utf-8") as f:
        f.write("limits: {max_body_bytes: 1048576}\nsignatures: {replay_window_seconds: 3600}\n")
    with (OUT / "sidecar-full" / "sidecar.log").open("wb") as log:
        sidecar = procs.add("sidecar", subprocess.Popen(
            [str(BIN / "reestr-sidecar"), "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
    wait_ready(admin, sidecar, "the sidecar")
    routes = {"sidecar": (free_port(), listen)}
    stunnel = procs.add("stunnel", subprocess.Popen(
        ["stunnel", str(write_stunnel_config(routes))], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(routes["sidecar"][0], stunnel, "stunnel")
    side = f"http://127.0.0.1:{routes['sidecar'][0]}"
    _checked_calls(side, template, signer)

    targets = {"a-unsigned": Target("a-unsigned", "(a-unsigned) SMEV 3, no signature check", side + sp.SOAP_PATH,
                                    sp._check_soap_sidecar, sidecar.pid),
               "a-signed": Target("a-signed", "(a-signed) SMEV 3 + GOST check + replay", f"{side}/{SIGNED_SID}",
                                  sp._check_soap_sidecar, sidecar.pid)}
    runs: dict[tuple[str, int], list[WrkResult]] = {}
    print(f"== wrk: {len(conns) * 2 * args.rounds} runs of {args.warmup:g}+{args.duration:g} s, "
          f"{args.rounds} round(s) interleaved", flush=True)
    for c in conns:
        for rnd in range(args.rounds):
            for key_, t in targets.items():
                assert t.pid is not None
                if args.warmup > 0:
                    wrk(t.url, c, args.warmup, args.threads, _lua(files[(c, rnd, key_, "warmup")], args), wrk_log)
                cpu0, loop0 = cpu_seconds(t.pid), cpu_seconds(t.pid, True)
                res = wrk(t.url, c, args.duration, args.threads, _lua(files[(c, rnd, key_, "run")], args), wrk_log)
                res.cpu_s, res.loop_cpu_s = cpu_seconds(t.pid) - cpu0, cpu_seconds(t.pid, True) - loop0
                runs.setdefault((key_, c), []).append(res)
                print(f"   {t.label:<42} c={c:<3} {res.rps:>8,.0f} req/s  p50 {res.p50_ms:7.2f} ms  "
                      f"p99 {res.p99_ms:7.2f} ms  CPU {res.cpu_us_per_req:5.0f} µs/req "
                      f"(loop {res.loop_us_per_req:.0f}){_exhausted(res, args)}", flush=True)
    results = {k: _median_run(rs) for k, rs in runs.items()}
    return _report(env_line, conns, targets, results, args, template, signer, sign_ms)


def _signed_part(bundle: Path) -> dict[str, object]:
    import json

    envelope = json.loads(bundle.read_text(encoding="utf-8"))
    return dict(envelope["signed"])


def _lua(bodies: Path, args: argparse.Namespace) -> Path:
    path = bodies.with_suffix(".lua")
    path.write_text(BODIES_LUA.format(path=bodies, threads=args.threads, content_type=sp.SOAP_CONTENT_TYPE,
                                      action=sp.SOAP_ACTION) + WRK_LUA, encoding="utf-8")
    return path


def _exhausted(res: WrkResult, args: argparse.Namespace) -> str:
    return "  [bodies ran out: raise --rate]" if res.requests >= args.rate * args.duration - 2 * args.threads else ""


def _checked_calls(side: str, template: etree._Element, signer: KeyFileSigner) -> None:
    """One call of each kind, so a stream of fast denials cannot pass as throughput."""
    headers = sp.SOAP_HEADERS
    body = signed_body(template, signer)
    unsigned = bytes(etree.tostring(template, encoding="utf-8"))
    changed = body.replace(b"ExpertiseResultNumber>", b"ExpertiseResultNumber>9", 1)
    expect = [(f"/{SIGNED_SID}", body, 200, None), (f"/{SIGNED_SID}", body, 409, "replayed-message"),
              (f"/{SIGNED_SID}", changed, 403, "signature-invalid"),
              (f"/{SIGNED_SID}", unsigned, 403, "signature-absent"), (sp.SOAP_PATH, unsigned, 200, None)]
    for path, content, status, code in expect:
        r = httpx.post(side + path, content=content, headers=headers, timeout=10)
        if r.status_code != status or (code is not None and sp._fault_code(r) != code):
            raise RuntimeError(f"checked call {path} expected {status} {code or ''}: HTTP {r.status_code} "
                               f"{r.text[:300]}")
    print("   checked: signed → 200, replay → 409 replayed-message, changed → 403 signature-invalid, "
          "unsigned → 403 signature-absent (signed service) and 200 (the other)", flush=True)


def _report(env_line: str, conns: list[int], targets: dict[str, Target], results: dict[tuple[str, int], WrkResult],
            args: argparse.Namespace, template: etree._Element, signer: KeyFileSigner, sign_ms: float) -> int:
    print(f"\n== reestr-sidecar signed SMEV 3 benchmark · {env_line}")
    print(f"the real ЕГРЗ SendRequestRequest re-signed per body (GOST R 34.10-2012 256), one sidecar "
          f"process, journal FULL · wrk {args.threads} threads, {args.warmup:g} s warm-up + "
          f"{args.duration:g} s per row, via stunnel with ved1's certificate · median of {args.rounds} "
          "interleaved round(s)\nCPU = CPU time of the sidecar per request, all threads; loop = its main thread\n")
    head = (f"{'target':<42} {'conns':>5} {'req/s':>8} {'(min–max)':>15} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU µs/req':>10} {'loop µs':>7} {'errors':>6} {'non-2xx':>7}")
    print(head)
    print("-" * len(head))
    for c in conns:
        for key_, t in targets.items():
            r = results[(key_, c)]
            lo, hi = r.spread or (r.rps, r.rps)
            print(f"{t.label:<42} {c:>5} {r.rps:>8,.0f} {f'({lo:,.0f}–{hi:,.0f})':>15} {r.p50_ms:>8.2f} "
                  f"{r.p99_ms:>8.2f} {r.cpu_us_per_req:>10,.0f} {r.loop_us_per_req:>7,.0f} {r.errors:>6} {r.non2xx:>7}")
        u, s = results[("a-unsigned", c)], results[("a-signed", c)]
        print(f"{'ratios':<42} {c:>5}  req/s (a-signed)/(a-unsigned) {s.rps / u.rps if u.rps else 0:6.1%}"
              f"   loop µs/req added by the check {s.loop_us_per_req - u.loop_us_per_req:+,.0f}\n")
    body = signed_body(template, signer)
    message = read_message(body, sp.SOAP_CONTENT_TYPE, [], "smev3")
    now = datetime.now(UTC)
    samples = []
    for _ in range(100):
        t = time.process_time()
        verdict(check_signatures(message, "smev3", client_certificate=b"", signers=None, at=now))
        samples.append(time.process_time() - t)
    print(f"in-process, median CPU per message: GOST check of the request {statistics.median(samples) * 1000:.2f} ms; "
          f"signing it (while preparing the bodies) {sign_ms:.2f} ms; digest backend {hashes.BACKEND}")
    clean = all(r.errors == 0 and r.non2xx == 0 for r in results.values())
    print(f"errors/non-2xx in the measured runs: {'none' if clean else 'SOME (see table)'}")
    print(f"load average after: {_loadavg()}; raw wrk output: {(OUT / 'wrk.log').relative_to(ROOT)}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
