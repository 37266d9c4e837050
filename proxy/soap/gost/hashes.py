"""GOST digests by XMLDSig algorithm URI: Streebog-256/512 (GOST R 34.11-2012) and GOST R 34.11-94.

Fast path: OpenSSL's GOST provider (Debian `libengine-gost-openssl`), loaded once into the
OpenSSL that `hashlib` uses, gives `md_gost12_256`, `md_gost12_512`, `md_gost94` at ~0.1 ms per
6 KB (bench/gost_bench.py). The load is process-wide: it adds algorithms to OpenSSL's default
library context (the `default` provider is loaded first so nothing else changes); `cryptography`
carries its own OpenSSL and is not affected. Without the provider only GOST R 34.11-94 remains
(ours, pure Python, `gost94`), and a Streebog signature is `signature-unsupported` with a detail
that names the missing package. (gostcrypto's pure-Python Streebog runs at ~0.2 MB/s, ~30 ms per
6 KB, and the package installs a top-level `tests` package that shadows a project's own, so it
is not a dependency.) `BACKEND` says which one is in use; docs/sidecar.md tells operators.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
from collections.abc import Callable

from proxy.soap.gost import gost94

#: digest algorithm URIs → (OpenSSL name, gostcrypto name or None)
STREEBOG_256 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256"
STREEBOG_512 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-512"
GOST94 = "http://www.w3.org/2001/04/xmldsig-more#gostr3411"
_NAMES = {STREEBOG_256: "md_gost12_256", STREEBOG_512: "md_gost12_512", GOST94: "md_gost94"}
_PROVIDER_GLOB = "/usr/lib/*/ossl-modules/gostprov.so"


def _load_provider() -> bool:
    paths = sorted(glob.glob(_PROVIDER_GLOB))
    if not paths:
        return False
    try:
        lib = ctypes.CDLL("libcrypto.so.3")
        lib.OSSL_PROVIDER_load.restype = ctypes.c_void_p
        lib.OSSL_PROVIDER_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        if not lib.OSSL_PROVIDER_load(None, b"default") or not lib.OSSL_PROVIDER_load(None, paths[0].encode()):
            return False
        hashlib.new("md_gost12_256", b"")
    except (OSError, AttributeError, ValueError):
        return False
    return True


BACKEND = "openssl" if _load_provider() else "python"


def _openssl(name: str) -> Callable[[bytes], bytes]:
    return lambda data: hashlib.new(name, data).digest()


if BACKEND == "openssl":
    DIGESTS: dict[str, Callable[[bytes], bytes]] = {uri: _openssl(name) for uri, name in _NAMES.items()}
else:  # pragma: no cover - CI installs the provider (.ci/run)
    DIGESTS = {GOST94: gost94.digest}

MISSING = "" if BACKEND == "openssl" else "OpenSSL's GOST provider is not installed (Debian: libengine-gost-openssl)"
