"""Signing SMEV 3 messages with a pluggable signer (R11: the author signs its own messages).

A `Signer` gets the exclusive-c14n bytes of SignedInfo and returns the SignatureValue bytes:
real agencies sign with a certified cryptographic provider, so the built-in key-file signer is
for tests and small deployments, and `CommandSigner` runs an agency's own program (SignedInfo
on stdin, base64 signature on stdout). Nothing here logs or returns key material; an external
signer's stderr is not read.

`sign_smev3` adds `CallerInformationSystemSignature` (a request) or
`SenderInformationSystemSignature` (a response) after the sender-provided data, whose `Id` it
signs with exclusive c14n + the SMEV transform, as the verifier expects (proxy.soap.smev_signatures).
"""

from __future__ import annotations

import base64
import binascii
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.errors import SignatureError
from proxy.soap.gost import curves, hashes, transform, xmldsig
from proxy.soap.gost.certs import read as read_certificate
from proxy.soap.gost.keys import load_private_key
from proxy.soap.profiles import SMEV3_TYPES

DS = xmldsig.DS
_METHOD = {"1.2.643.7.1.1.1.1": "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256",
           "1.2.643.7.1.1.1.2": "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-512"}


def xmldsig_method(certificate_der: bytes) -> str:
    """The SignatureMethod URI a GOST R 34.10-2012 certificate signs with; SigningError otherwise."""
    algorithm = read_certificate(certificate_der).key_algorithm
    if algorithm not in _METHOD:
        raise SigningError("only GOST R 34.10-2012 keys sign (2001 keys are withdrawn)")
    return _METHOD[algorithm]


class SigningError(SignatureError):
    """The message could not be signed (no signer output, a message with nothing to sign...)."""

    code = "signing-failed"


class Signer(Protocol):
    """Makes the SignatureValue of canonical SignedInfo bytes; knows its certificate and method."""

    certificate: bytes  # DER
    method: str         # SignatureMethod URI

    def sign(self, signed_info: bytes) -> bytes: ...


@dataclass
class KeyFileSigner:
    """GOST R 34.10-2012 with a PEM PKCS #8 key file (as `openssl genpkey -engine gost` writes)."""

    certificate: bytes
    method: str
    _curve: curves.Curve
    _d: int

    @classmethod
    def load(cls, key_file: Path, certificate_der: bytes) -> KeyFileSigner:
        algorithm, curve, d = load_private_key(key_file.read_bytes())
        if algorithm not in _METHOD:
            raise SigningError("only GOST R 34.10-2012 keys sign (2001 keys are withdrawn)")
        if curves.public_key(curve, d) != read_certificate(certificate_der).public:
            raise SigningError("the key does not belong to the certificate")
        return cls(certificate=certificate_der, method=_METHOD[algorithm], _curve=curve, _d=d)

    def sign(self, signed_info: bytes) -> bytes:
        digest_uri = xmldsig.SIGNATURE_METHODS[self.method][0]
        return curves.sign(self._curve, self._d, hashes.DIGESTS[digest_uri](signed_info))

    def __repr__(self) -> str:  # never the key
        return f"KeyFileSigner(method={self.method!r})"


@dataclass
class CommandSigner:
    """An external signer: `argv` reads SignedInfo on stdin, writes the base64 SignatureValue."""

    certificate: bytes
    method: str
    argv: tuple[str, ...]
    timeout: float = 10.0

    def sign(self, signed_info: bytes) -> bytes:
        try:
            done = subprocess.run(self.argv, input=signed_info, capture_output=True, timeout=self.timeout,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SigningError(f"the signing command did not run: {type(e).__name__}") from None
        if done.returncode != 0:
            raise SigningError(f"the signing command exited {done.returncode}")
        try:
            return base64.b64decode(b"".join(done.stdout.split()), validate=True)
        except (binascii.Error, ValueError):
            raise SigningError("the signing command's output is not base64") from None


def sign_smev3(root: etree._Element, signer: Signer) -> None:
    """Sign the one sender-provided data element of an SMEV 3 message in place."""
    data = [el for ns in SMEV3_TYPES for name in ("SenderProvidedRequestData", "SenderProvidedResponseData")
            for el in root.iter(f"{{{ns}}}{name}")]
    if len(data) != 1:
        raise SigningError(f"{len(data)} sender-provided data elements, expected one")
    target = data[0]
    namespace = etree.QName(target).namespace
    kind = "Caller" if etree.QName(target).localname.endswith("RequestData") else "Sender"
    element_id = target.get("Id") or "SIGNED_BY_CALLER"
    target.set("Id", element_id)
    digest_uri = xmldsig.SIGNATURE_METHODS[signer.method][0]
    digest = hashes.DIGESTS[digest_uri](transform.apply(target))
    holder = etree.Element(f"{{{namespace}}}{kind}InformationSystemSignature")
    sig = etree.SubElement(holder, f"{{{DS}}}Signature", nsmap={"ds": DS})
    info = etree.SubElement(sig, f"{{{DS}}}SignedInfo")
    etree.SubElement(info, f"{{{DS}}}CanonicalizationMethod", Algorithm=xmldsig.EXC_C14N)
    etree.SubElement(info, f"{{{DS}}}SignatureMethod", Algorithm=signer.method)
    ref = etree.SubElement(info, f"{{{DS}}}Reference", URI=f"#{element_id}")
    transforms = etree.SubElement(ref, f"{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=xmldsig.EXC_C14N)
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=transform.URI)
    etree.SubElement(ref, f"{{{DS}}}DigestMethod", Algorithm=digest_uri)
    etree.SubElement(ref, f"{{{DS}}}DigestValue").text = base64.b64encode(digest).decode()
    target.addnext(holder)
    value = signer.sign(etree.tostring(info, method="c14n", exclusive=True))
    etree.SubElement(sig, f"{{{DS}}}SignatureValue").text = base64.b64encode(value).decode()
    x509 = etree.SubElement(etree.SubElement(sig, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
    etree.SubElement(x509, f"{{{DS}}}X509Certificate").text = base64.b64encode(signer.certificate).decode()
