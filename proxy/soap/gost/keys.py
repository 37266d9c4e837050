"""GOST private keys from PEM files as OpenSSL's GOST engine writes them (PKCS #8).

PrivateKeyInfo { 0, {1.2.643.7.1.1.1.1 | .2 | 1.2.643.2.2.19, {curve OID, digest OID?}},
OCTET STRING d (little-endian; some tools wrap it in a second OCTET STRING or an INTEGER) }.
The key is never logged or put in an error: errors say what is wrong, not what was read.
"""

from __future__ import annotations

import base64
import binascii
import re

from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5208

from proxy.soap.errors import SignatureError
from proxy.soap.gost.certs import KEY_ALGORITHMS
from proxy.soap.gost.curves import CURVES, Curve

_PEM = re.compile(r"-----BEGIN PRIVATE KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PRIVATE KEY-----")


class SigningKeyError(SignatureError):
    """A signing key file that cannot be used (its content is never echoed)."""

    code = "signing-key-unreadable"


def load_private_key(pem: bytes) -> tuple[str, Curve, int]:
    """(key algorithm OID, curve, d) of a PEM PKCS #8 GOST private key."""
    match = _PEM.search(pem.decode("ascii", "replace"))
    if match is None:
        raise SigningKeyError("not a PEM PRIVATE KEY")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
        info, _ = decoder.decode(der, asn1Spec=rfc5208.PrivateKeyInfo())
        algorithm = str(info["privateKeyAlgorithm"]["algorithm"])
        if algorithm not in KEY_ALGORITHMS:
            raise SigningKeyError(f"key algorithm {algorithm} is not GOST R 34.10")
        params, _ = decoder.decode(info["privateKeyAlgorithm"]["parameters"])
        curve = CURVES.get(str(params[0]))
        raw = info["privateKey"].asOctets()
        if len(raw) != KEY_ALGORITHMS[algorithm]:  # wrapped: OCTET STRING or INTEGER inside
            inner, _ = decoder.decode(raw)
            raw = inner.asOctets() if isinstance(inner, univ.OctetString) else \
                int(inner).to_bytes(KEY_ALGORITHMS[algorithm], "little")
    except (binascii.Error, PyAsn1Error, ValueError, IndexError, TypeError, OverflowError) as e:
        raise SigningKeyError(f"private key unreadable: {type(e).__name__}") from None
    if curve is None:
        raise SigningKeyError("the key's curve is not supported")
    d = int.from_bytes(raw, "little")
    if not 0 < d < curve.q:
        raise SigningKeyError("the private key is out of range")
    return algorithm, curve, d
