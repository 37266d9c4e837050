"""GOST signature benchmark (issue 9): verify and sign per message, median process CPU time.

    .venv/bin/python bench/gost_bench.py [--rounds 200]

Rows (each the median of `--rounds` single-message runs, CPU time of this process):

  smev3 parse        read_message of the real 5.8 KB ЕГРЗ SendRequestRequest (the one parse)
  smev3 verify       check_signatures on that parse: SMEV transform + Streebog-256 digest of
                     SenderProvidedRequestData, exclusive c14n + Streebog of SignedInfo, GOST R
                     34.10-2012 256 verify (the real signature, at the message's own time)
  smev3 sign         sign_smev3 of the same request with a fresh GOST R 34.10-2012 256 key
  smev2 verify       check_signatures of the real SMEV 2 smev-2.xml (GOST R 34.11-94 + 34.10-2001)
  smev2 verify (py)  the same with our pure-Python GOST R 34.11-94 instead of OpenSSL's
  curve verify affine  one 256-bit verify with affine double-and-add (the gostcrypto way), the
                     baseline measured in the same run, beside `curve verify jacobian` (ours)

Digest backend: OpenSSL's GOST provider when installed (hashes.BACKEND is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.soap.gost import curves, hashes  # noqa: E402
from proxy.soap.message import read_message  # noqa: E402
from proxy.soap.signatures import check_signatures, verdict  # noqa: E402
from proxy.soap.signing import KeyFileSigner, sign_smev3  # noqa: E402

REAL = ROOT / "tests/data/real"
SMEV3 = (REAL / "gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml").read_bytes()
SMEV2 = (REAL / "CodeInside__siu/gws-crypto-cryptopro/src/test/resources/smev-2.xml").read_bytes()
AT3 = datetime(2020, 5, 20, tzinfo=UTC)
AT2 = datetime(2012, 9, 14, tzinfo=UTC)
CT = "text/xml; charset=utf-8"


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        samples.append(time.process_time() - t)
    return statistics.median(samples) * 1000


def _affine_verify(c: curves.Curve, public: tuple[int, int], digest: bytes, sig: bytes) -> bool:
    """Affine double-and-add with one inversion per step, as pure-Python GOST libraries do."""
    def add(p1: tuple[int, int] | None, p2: tuple[int, int] | None) -> tuple[int, int] | None:
        if p1 is None:
            return p2
        if p2 is None:
            return p1
        if p1[0] == p2[0] and (p1[1] + p2[1]) % c.p == 0:
            return None
        lam = ((3 * p1[0] * p1[0] + c.a) * pow(2 * p1[1], -1, c.p) if p1 == p2
               else (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, c.p)) % c.p
        x = (lam * lam - p1[0] - p2[0]) % c.p
        return x, (lam * (p1[0] - x) - p1[1]) % c.p

    def mul(k: int, pt: tuple[int, int]) -> tuple[int, int] | None:
        acc = None
        for bit in bin(k)[2:]:
            acc = add(acc, acc)
            if bit == "1":
                acc = add(acc, pt)
        return acc
    s, r = int.from_bytes(sig[:c.size], "big"), int.from_bytes(sig[c.size:], "big")
    v = pow(int.from_bytes(digest, "little") % c.q or 1, -1, c.q)
    point = add(mul(s * v % c.q, (c.x, c.y)), mul(-r * v % c.q, public))
    return point is not None and point[0] % c.q == r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    n = args.rounds
    print(f"digest backend: {hashes.BACKEND}; {n} rounds per row; median CPU ms per message")

    m3 = read_message(SMEV3, CT, [], "smev3")
    assert verdict(check_signatures(m3, "smev3", client_certificate=b"", signers=None, at=AT3)).status == "valid"
    m2 = read_message(SMEV2, CT, [], "smev2")
    assert verdict(check_signatures(m2, "smev2", client_certificate=b"", signers=None, at=AT2)).status == "valid"

    curve = curves.CURVES["1.2.643.7.1.2.1.1.1"]
    d = int.from_bytes(os.urandom(32), "big") % curve.q
    signer = KeyFileSigner(certificate=b"\x30\x00", method="urn:ietf:params:xml:ns:cpxmlsec:algorithms:"
                           "gostr34102012-gostr34112012-256", _curve=curve, _d=d)

    def sign3() -> None:
        root = etree.fromstring(SMEV3)
        (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
        holder.getparent().remove(holder)
        sign_smev3(root, signer)

    rows = [
        ("smev3 parse", lambda: read_message(SMEV3, CT, [], "smev3")),
        ("smev3 verify", lambda: check_signatures(m3, "smev3", client_certificate=b"", signers=None, at=AT3)),
        ("smev3 sign", sign3),
        ("smev2 verify", lambda: check_signatures(m2, "smev2", client_certificate=b"", signers=None, at=AT2)),
    ]
    for name, fn in rows:
        print(f"{name:<26} {median_ms(fn, n):8.2f}")
    fast = hashes.DIGESTS[hashes.GOST94]
    hashes.DIGESTS[hashes.GOST94] = hashes.gost94.digest
    try:
        py = median_ms(lambda: check_signatures(m2, "smev2", client_certificate=b"", signers=None, at=AT2), n)
        print(f"{'smev2 verify (py 34.11-94)':<26} {py:8.2f}")
    finally:
        hashes.DIGESTS[hashes.GOST94] = fast
    public = curves.public_key(curve, d)
    digest = os.urandom(32)
    sig = curves.sign(curve, d, digest)
    assert _affine_verify(curve, public, digest, sig)
    jac = median_ms(lambda: curves.verify(curve, public, digest, sig), n)
    aff = median_ms(lambda: _affine_verify(curve, public, digest, sig), max(5, n // 20))
    print(f"{'curve verify jacobian':<26} {jac:8.2f}")
    print(f"{'curve verify affine':<26} {aff:8.2f}   ({aff / jac:.1f}x the Jacobian verify)")
    print(f"{'curve sign 256':<26} {median_ms(lambda: curves.sign(curve, d, digest), n):8.2f}")
    c512 = curves.CURVES["1.2.643.7.1.2.1.2.1"]
    d512 = int.from_bytes(os.urandom(64), "big") % c512.q
    p512, dg512 = curves.public_key(c512, d512), os.urandom(64)
    s512 = curves.sign(c512, d512, dg512)
    print(f"{'curve verify 512':<26} {median_ms(lambda: curves.verify(c512, p512, dg512, s512), n):8.2f}")
    print(f"{'curve sign 512':<26} {median_ms(lambda: curves.sign(c512, d512, dg512), n):8.2f}")


if __name__ == "__main__":
    main()
