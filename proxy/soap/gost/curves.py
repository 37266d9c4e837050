"""GOST R 34.10-2001 and 34.10-2012 (256 and 512 bit) signatures: verify and sign.

The curve parameters are the tc26 and CryptoPro sets (below); the arithmetic is ours. gostcrypto's affine
double-and-add costs 65–110 ms per verify here; Jacobian coordinates (one inversion per
multiplication) with a simultaneous (Shamir) double multiplication bring it to a few ms
(bench/gost_bench.py prints the figure).

Conventions that verify the real SMEV messages (docs/sidecar.md): the digest is read as a
little-endian integer; a signature value is s‖r, each big-endian, of the curve's size.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

_Jac = tuple[int, int, int]


@dataclass(frozen=True)
class Curve:
    """A short Weierstrass curve y² = x³ + ax + b over GF(p), base point (x, y) of order q."""

    name: str
    p: int
    a: int
    b: int
    q: int
    x: int
    y: int
    size: int  # bytes of a coordinate and of each half of a signature: 32 or 64

    def on_curve(self, x: int, y: int) -> bool:
        """True if (x, y) is a point of this curve (a public key must be)."""
        p = self.p
        return 0 <= x < p and 0 <= y < p and (y * y - x * x * x - self.a * x - self.b) % p == 0


# Weierstrass parameters of R 1323565.1.024-2019 / RFC 7836 / RFC 4357 (the tc26 twisted Edwards
# sets paramSetA-256 and paramSetC-512 in their Weierstrass form), exported once from gostcrypto
# and checked by the tests (base point on the curve, q·G = O, the real messages verify).
_BY_NAME = {
    "id-tc26-gost-3410-2012-256-paramSetA": Curve("id-tc26-gost-3410-2012-256-paramSetA", size=32,
        p=0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd97,
        a=0xc2173f1513981673af4892c23035a27ce25e2013bf95aa33b22c656f277e7335,
        b=0x295f9bae7428ed9ccc20e7c359a9d41a22fccd9108e17bf7ba9337a6f8ae9513,
        q=0x400000000000000000000000000000000fd8cddfc87b6635c115af556c360c67,
        x=0x91e38443a5e82c0d880923425712b2bb658b9196932e02c78b2582fe742daa28,
        y=0x32879423ab1a0375895786c4bb46e9565fde0b5344766740af268adb32322e5c,
    ),
    "id-tc26-gost-3410-2012-256-paramSetB": Curve("id-tc26-gost-3410-2012-256-paramSetB", size=32,
        p=0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd97,
        a=0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd94,
        b=0xa6,
        q=0xffffffffffffffffffffffffffffffff6c611070995ad10045841b09b761b893,
        x=0x1,
        y=0x8d91e471e0989cda27df505a453f2b7635294f2ddf23e3b122acc99c9e9f1e14,
    ),
    "id-tc26-gost-3410-2012-256-paramSetC": Curve("id-tc26-gost-3410-2012-256-paramSetC", size=32,
        p=0x8000000000000000000000000000000000000000000000000000000000000c99,
        a=0x8000000000000000000000000000000000000000000000000000000000000c96,
        b=0x3e1af419a269a5f866a7d3c25c3df80ae979259373ff2b182f49d4ce7e1bbc8b,
        q=0x800000000000000000000000000000015f700cfff1a624e5e497161bcc8a198f,
        x=0x1,
        y=0x3fa8124359f96680b83d1c3eb2c070e5c545c9858d03ecfb744bf8d717717efc,
    ),
    "id-tc26-gost-3410-2012-256-paramSetD": Curve("id-tc26-gost-3410-2012-256-paramSetD", size=32,
        p=0x9b9f605f5a858107ab1ec85e6b41c8aacf846e86789051d37998f7b9022d759b,
        a=0x9b9f605f5a858107ab1ec85e6b41c8aacf846e86789051d37998f7b9022d7598,
        b=0x805a,
        q=0x9b9f605f5a858107ab1ec85e6b41c8aa582ca3511eddfb74f02f3a6598980bb9,
        x=0x0,
        y=0x41ece55743711a8c3cbf3783cd08c0ee4d4dc440d4641a8f366e550dfdb3bb67,
    ),
    "id-tc26-gost-3410-12-512-paramSetA": Curve("id-tc26-gost-3410-12-512-paramSetA", size=64,
        p=0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdc7,
        a=0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdc4,
        b=0xe8c2505dedfc86ddc1bd0b2b6667f1da34b82574761cb0e879bd081cfd0b6265ee3cb090f30d27614cb4574010da90dd862ef9d4ebee4761503190785a71c760,
        q=0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff27e69532f48d89116ff22b8d4e0560609b4b38abfad2b85dcacdb1411f10b275,
        x=0x3,
        y=0x7503cfe87a836ae3a61b8816e25450e6ce5e1c93acf1abc1778064fdcbefa921df1626be4fd036e93d75e6a50e3a41e98028fe5fc235f5b889a589cb5215f2a4,
    ),
    "id-tc26-gost-3410-12-512-paramSetB": Curve("id-tc26-gost-3410-12-512-paramSetB", size=64,
        p=0x8000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000006f,
        a=0x8000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000006c,
        b=0x687d1b459dc841457e3e06cf6f5e2517b97c7d614af138bcbf85dc806c4b289f3e965d2db1416d217f8b276fad1ab69c50f78bee1fa3106efb8ccbc7c5140116,
        q=0x800000000000000000000000000000000000000000000000000000000000000149a1ec142565a545acfdb77bd9d40cfa8b996712101bea0ec6346c54374f25bd,
        x=0x2,
        y=0x1a8f7eda389b094c2c071e3647a8940f3c123b697578c213be6dd9e6c8ec7335dcb228fd1edf4a39152cbcaaf8c0398828041055f94ceeec7e21340780fe41bd,
    ),
    "id-tc26-gost-3410-2012-512-paramSetC": Curve("id-tc26-gost-3410-2012-512-paramSetC", size=64,
        p=0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdc7,
        a=0xdc9203e514a721875485a529d2c722fb187bc8980eb866644de41c68e143064546e861c0e2c9edd92ade71f46fcf50ff2ad97f951fda9f2a2eb6546f39689bd3,
        b=0xb4c4ee28cebc6c2c8ac12952cf37f16ac7efb6a9f69f4b57ffda2e4f0de5ade038cbc2fff719d2c18de0284b8bfef3b52b8cc7a5f5bf0a3c8d2319a5312557e1,
        q=0x3fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc98cdba46506ab004c33a9ff5147502cc8eda9e7a769a12694623cef47f023ed,
        x=0xe2e31edfc23de7bdebe241ce593ef5de2295b7a9cbaef021d385f7074cea043aa27272a7ae602bf2a7b9033db9ed3610c6fb85487eae97aac5bc7928c1950148,
        y=0xf5ce40d95b5eb899abbccff5911cb8577939804d6527378b8c108c3d2090ff9be18e2d33e3021ed2ef32d85822423b6304f726aa854bae07d0396e9a9addc40f,
    ),
}

_SETS = {
    "id-tc26-gost-3410-2012-256-paramSetA": ("1.2.643.7.1.2.1.1.1",),
    "id-tc26-gost-3410-2012-256-paramSetB": ("1.2.643.7.1.2.1.1.2", "1.2.643.2.2.35.1", "1.2.643.2.2.36.0"),
    "id-tc26-gost-3410-2012-256-paramSetC": ("1.2.643.7.1.2.1.1.3", "1.2.643.2.2.35.2"),
    "id-tc26-gost-3410-2012-256-paramSetD": ("1.2.643.7.1.2.1.1.4", "1.2.643.2.2.35.3", "1.2.643.2.2.36.1"),
    "id-tc26-gost-3410-12-512-paramSetA": ("1.2.643.7.1.2.1.2.1",),
    "id-tc26-gost-3410-12-512-paramSetB": ("1.2.643.7.1.2.1.2.2",),
    "id-tc26-gost-3410-2012-512-paramSetC": ("1.2.643.7.1.2.1.2.3",),
}

#: curves by the OID of their parameter set (tc26 and the CryptoPro sets of GOST R 34.10-2001)
CURVES: dict[str, Curve] = {}
for _name, _oids in _SETS.items():
    CURVES.update(dict.fromkeys(_oids, _BY_NAME[_name]))


def _double(c: Curve, pt: _Jac) -> _Jac:
    x, y, z = pt
    if y == 0 or z == 0:
        return (1, 1, 0)
    p = c.p
    yy = y * y % p
    s = 4 * x * yy % p
    zz = z * z % p
    m = (3 * x * x + c.a * zz * zz) % p
    x3 = (m * m - 2 * s) % p
    return (x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p)


def _add(c: Curve, p1: _Jac, p2: _Jac) -> _Jac:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    p = c.p
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    if u1 == u2:
        return _double(c, p1) if s1 == s2 else (1, 1, 0)
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return (x3, (r * (v - x3) - s1 * hhh) % p, h * z1 * z2 % p)


def _affine_x(c: Curve, pt: _Jac) -> int | None:
    x, _, z = pt
    if z == 0:
        return None
    zi = pow(z, -1, c.p)
    return x * zi * zi % c.p


def _double_mul(c: Curve, k1: int, pt1: tuple[int, int], k2: int, pt2: tuple[int, int]) -> _Jac:
    """k1·pt1 + k2·pt2 by simultaneous double-and-add (Shamir's trick)."""
    a: _Jac = (pt1[0], pt1[1], 1)
    b: _Jac = (pt2[0], pt2[1], 1)
    ab = _add(c, a, b)
    acc: _Jac = (1, 1, 0)
    for i in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        acc = _double(c, acc)
        bits = ((k1 >> i) & 1, (k2 >> i) & 1)
        if bits == (1, 1):
            acc = _add(c, acc, ab)
        elif bits == (1, 0):
            acc = _add(c, acc, a)
        elif bits == (0, 1):
            acc = _add(c, acc, b)
    return acc


def _e(c: Curve, digest: bytes) -> int:
    e = int.from_bytes(digest, "little") % c.q
    return e or 1


def verify(c: Curve, public: tuple[int, int], digest: bytes, signature: bytes) -> bool:
    """True if `signature` (s‖r, big-endian) is valid for `digest` under the public key (x, y)."""
    if len(signature) != 2 * c.size or not c.on_curve(*public):
        return False
    s = int.from_bytes(signature[: c.size], "big")
    r = int.from_bytes(signature[c.size:], "big")
    if not (0 < r < c.q and 0 < s < c.q):
        return False
    v = pow(_e(c, digest), -1, c.q)
    point = _double_mul(c, s * v % c.q, (c.x, c.y), (-r * v) % c.q, public)
    x = _affine_x(c, point)
    return x is not None and x % c.q == r


def public_key(c: Curve, private: int) -> tuple[int, int]:
    """The public point of a private key d (1 ≤ d < q)."""
    point = _double_mul(c, private, (c.x, c.y), 0, (c.x, c.y))
    x, y, z = point
    zi = pow(z, -1, c.p)
    return (x * zi * zi % c.p, y * zi * zi * zi % c.p)


def sign(c: Curve, private: int, digest: bytes) -> bytes:
    """A signature s‖r (big-endian) of `digest` with the private key d, fresh random k."""
    e = _e(c, digest)
    while True:
        k = secrets.randbelow(c.q - 1) + 1
        x = _affine_x(c, _double_mul(c, k, (c.x, c.y), 0, (c.x, c.y)))
        r = (x or 0) % c.q
        s = (r * private + k * e) % c.q
        if r and s:
            return s.to_bytes(c.size, "big") + r.to_bytes(c.size, "big")
