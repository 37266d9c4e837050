"""GOST R 34.11-94 with the CryptoPro parameter set (RFC 4357 §11.2): SMEV 2's digest.

Used when OpenSSL's GOST provider is not loaded (`hashes`); the tests check it against
OpenSSL's `md_gost94`. Vectors are 256-bit integers read little-endian, as the standard writes
them: y1 is the lowest word. Speed is not its point: it is the fallback and the second opinion.
"""

from __future__ import annotations

_SBOX = (  # K1 (lowest nibble) .. K8, id-GostR3411-94-CryptoProParamSet
    (10, 4, 5, 6, 8, 1, 3, 7, 13, 12, 14, 0, 9, 2, 11, 15),
    (5, 15, 4, 0, 2, 13, 11, 9, 1, 7, 6, 3, 12, 14, 10, 8),
    (7, 15, 12, 14, 9, 4, 1, 0, 3, 11, 5, 2, 6, 10, 8, 13),
    (4, 10, 7, 12, 0, 15, 2, 8, 14, 1, 6, 5, 13, 11, 9, 3),
    (7, 6, 4, 11, 9, 12, 2, 10, 1, 8, 0, 14, 15, 13, 3, 5),
    (7, 6, 2, 4, 13, 9, 15, 0, 10, 1, 5, 11, 8, 14, 12, 3),
    (13, 14, 4, 1, 7, 0, 5, 10, 3, 12, 8, 15, 6, 2, 9, 11),
    (1, 3, 10, 9, 5, 11, 4, 15, 8, 6, 7, 14, 13, 0, 2, 12),
)
_M32 = 0xFFFFFFFF
_M256 = (1 << 256) - 1
_C3 = 0xFF00FFFF000000FFFF0000FF00FFFF0000FF00FF00FF00FFFF00FF00FF00FF00


def _rotl11(x: int) -> int:
    return ((x << 11) | (x >> 21)) & _M32


# f(x) = rotl11(S(x)), tabulated per byte of x: four lookups instead of eight nibble substitutions
_T = tuple(
    tuple(_rotl11(((_SBOX[2 * j + 1][b >> 4] << 4) | _SBOX[2 * j][b & 15]) << (8 * j)) for b in range(256))
    for j in range(4))


def _f(x: int) -> int:
    t0, t1, t2, t3 = _T
    return t0[x & 255] ^ t1[(x >> 8) & 255] ^ t2[(x >> 16) & 255] ^ t3[x >> 24]


def _encrypt(key: int, block: int) -> int:
    """GOST 28147-89 ECB encryption of a 64-bit block (n1 its low half) under a 256-bit key."""
    k = [(key >> (32 * i)) & _M32 for i in range(8)]
    order = k * 3 + k[::-1]
    n1, n2 = block & _M32, block >> 32
    for i in range(0, 32, 2):
        n2 ^= _f((n1 + order[i]) & _M32)
        n1 ^= _f((n2 + order[i + 1]) & _M32)
    return (n1 << 32) | n2


def _a(y: int) -> int:
    y1, y2 = y & (2**64 - 1), (y >> 64) & (2**64 - 1)
    return (y >> 64) | ((y1 ^ y2) << 192)


def _p(y: int) -> int:
    b = y.to_bytes(32, "little")
    return int.from_bytes(bytes(b[8 * i + k] for k in range(8) for i in range(4)), "little")


def _psi(y: int) -> int:
    x = y ^ (y >> 16) ^ (y >> 32) ^ (y >> 48) ^ (y >> 192) ^ (y >> 240)
    return (y >> 16) | ((x & 0xFFFF) << 240)


def _step(h: int, m: int) -> int:
    u, v = h, m
    keys = [_p(u ^ v)]
    for c in (0, _C3, 0):
        u = _a(u) ^ c
        v = _a(_a(v))
        keys.append(_p(u ^ v))
    s = 0
    for i, key in enumerate(keys):
        s |= _encrypt(key, (h >> (64 * i)) & (2**64 - 1)) << (64 * i)
    for _ in range(12):
        s = _psi(s)
    x = _psi(m ^ s) ^ h
    for _ in range(61):
        x = _psi(x)
    return x


def digest(data: bytes) -> bytes:
    """The 32-byte GOST R 34.11-94 (CryptoPro parameters) digest of `data`, zero starting vector."""
    h = total = 0
    for i in range(0, len(data), 32):
        m = int.from_bytes(data[i:i + 32], "little")
        total = (total + m) & _M256
        h = _step(h, m)
    h = _step(h, 8 * len(data))
    h = _step(h, total)
    return h.to_bytes(32, "little")
