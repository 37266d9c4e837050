"""Signatures in the SOAP Header, made as the verifiers expect them (R11).

- `sign_smev2`: WS-Security as SMEV 2 does it — a `wsse:Security` block with actor
  `http://smev.gosuslugi.ru/actors/smev` holding an X.509 `wsse:BinarySecurityToken` and one
  ds:Signature (exclusive c14n, GOST R 34.10-2012 with the signer's Streebog) over the Body by
  its `wsu:Id`; the certificate named by `SecurityTokenReference` (proxy.soap.smev_signatures).
- `sign_plain`: XMLDSig RSA / ECDSA (SHA-256) in `soap:Header`, one Reference to the Body by its
  `wsu:Id`, the certificate in `KeyInfo/X509Data` (proxy.soap.signatures.check_soap_signature).
  A `plain` signature must be by the key of the TLS certificate that authenticates its sender,
  so `PemSigner` signs with a sidecar's own TLS key (its PEM bundle: key and certificate).

Both take any `Signer` (proxy.soap.signing): SignedInfo's exclusive-c14n bytes in, the
SignatureValue out. `has_header_signature` says whether a message was already signed there.
Nothing here logs or returns key material.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.gost import hashes as gost_hashes
from proxy.soap.gost import xmldsig
from proxy.soap.signing import Signer, SigningError
from proxy.soap.smev_signatures import SMEV2_ACTOR, WSSE, X509V3
from proxy.soap.verdict import Refused

DS = xmldsig.DS
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_SHA256: dict[str, Callable[[bytes], bytes]] = {SHA256: lambda data: hashlib.sha256(data).digest()}


@dataclass
class PemSigner:
    """RSA (PKCS #1 v1.5) or ECDSA with SHA-256, from a PEM bundle holding the key and its
    certificate first (a sidecar's TLS bundle)."""

    certificate: bytes
    method: str
    _key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, bundle: Path) -> PemSigner:
        data = bundle.read_bytes()
        try:
            key = serialization.load_pem_private_key(data, password=None)
            cert = x509.load_pem_x509_certificates(data)[0]
        except (ValueError, TypeError, IndexError) as e:
            raise SigningError(f"{bundle.name}: no key and certificate: {type(e).__name__}") from None
        if isinstance(key, rsa.RSAPrivateKey):
            method = RSA_SHA256
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            method = ECDSA_SHA256
        else:
            raise SigningError(f"{bundle.name}: only RSA and ECDSA keys sign plain messages")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise SigningError(f"{bundle.name}: the key does not belong to the first certificate")
        return cls(certificate=cert.public_bytes(serialization.Encoding.DER), method=method, _key=key)

    def sign(self, signed_info: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self._key.sign(signed_info, ec.ECDSA(hashes.SHA256())))
        size = (self._key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")  # XMLDSig: r || s

    def __repr__(self) -> str:  # never the key
        return f"PemSigner(method={self.method!r})"


def has_header_signature(root: etree._Element) -> bool:
    """True if the Header already holds a ds:Signature (directly or in a wsse:Security block)."""
    header = root.find(f"{{{etree.QName(root).namespace}}}Header")
    if header is None:
        return False
    return header.find(f"{{{DS}}}Signature") is not None or header.find(
        f"{{{WSSE}}}Security/{{{DS}}}Signature") is not None


def sign_plain(root: etree._Element, signer: Signer) -> None:
    """Sign the Body of a SOAP envelope in place with an RSA / ECDSA signature in its Header."""
    if signer.method not in (RSA_SHA256, ECDSA_SHA256):
        raise SigningError("plain messages are signed with RSA or ECDSA")
    body_id = _body_id(root)
    sig = _signature(root, body_id, signer, SHA256, _SHA256[SHA256])
    x509data = etree.SubElement(etree.SubElement(sig, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
    etree.SubElement(x509data, f"{{{DS}}}X509Certificate").text = base64.b64encode(signer.certificate).decode()
    _header(root).insert(0, sig)


def sign_smev2(root: etree._Element, signer: Signer) -> None:
    """Sign the Body of an SMEV 2 envelope in place with a WS-Security GOST signature."""
    if signer.method not in xmldsig.SIGNATURE_METHODS:
        raise SigningError("SMEV 2 messages are signed with GOST")
    digest_uri = xmldsig.SIGNATURE_METHODS[signer.method][0]
    body_id = _body_id(root)
    env = etree.QName(root).namespace
    block = etree.Element(f"{{{WSSE}}}Security", {f"{{{env}}}actor": SMEV2_ACTOR}, nsmap={"wsse": WSSE})
    token_id = f"CertId-{body_id}"
    token = etree.SubElement(block, f"{{{WSSE}}}BinarySecurityToken", {
        f"{{{WSU}}}Id": token_id, "EncodingType": BASE64, "ValueType": X509V3}, nsmap={"wsu": WSU})
    token.text = base64.b64encode(signer.certificate).decode()
    sig = _signature(root, body_id, signer, digest_uri, gost_hashes.DIGESTS[digest_uri])
    ref = etree.SubElement(etree.SubElement(etree.SubElement(sig, f"{{{DS}}}KeyInfo"),
                                            f"{{{WSSE}}}SecurityTokenReference"), f"{{{WSSE}}}Reference")
    ref.set("URI", f"#{token_id}")
    ref.set("ValueType", X509V3)
    block.append(sig)
    _header(root).insert(0, block)


def _body_id(root: etree._Element) -> str:
    """The Body's id, a `wsu:Id` added if it has none (before anything is digested)."""
    body = root.find(f"{{{etree.QName(root).namespace}}}Body")
    if body is None:
        raise SigningError("no SOAP Body to sign")
    body_id = xmldsig.element_id(body)
    if body_id is None:
        body_id = "body"
        body.set(f"{{{WSU}}}Id", body_id)
    try:
        xmldsig.by_id(root, f"#{body_id}")  # exactly one element carries it, as the verifier requires
    except Refused:
        raise SigningError("the Body's id is not unique") from None
    return body_id


def _signature(root: etree._Element, body_id: str, signer: Signer, digest_uri: str,
               digest: Callable[[bytes], bytes]) -> etree._Element:
    """ds:Signature with SignedInfo over the Body and its SignatureValue (KeyInfo is the caller's)."""
    body = root.find(f"{{{etree.QName(root).namespace}}}Body")
    sig = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
    info = etree.SubElement(sig, f"{{{DS}}}SignedInfo")
    etree.SubElement(info, f"{{{DS}}}CanonicalizationMethod", Algorithm=xmldsig.EXC_C14N)
    etree.SubElement(info, f"{{{DS}}}SignatureMethod", Algorithm=signer.method)
    ref = etree.SubElement(info, f"{{{DS}}}Reference", URI=f"#{body_id}")
    etree.SubElement(etree.SubElement(ref, f"{{{DS}}}Transforms"), f"{{{DS}}}Transform",
                     Algorithm=xmldsig.EXC_C14N)
    etree.SubElement(ref, f"{{{DS}}}DigestMethod", Algorithm=digest_uri)
    value = digest(etree.tostring(body, method="c14n", exclusive=True))
    etree.SubElement(ref, f"{{{DS}}}DigestValue").text = base64.b64encode(value).decode()
    signature = signer.sign(etree.tostring(info, method="c14n", exclusive=True))
    etree.SubElement(sig, f"{{{DS}}}SignatureValue").text = base64.b64encode(signature).decode()
    return sig


def _header(root: etree._Element) -> etree._Element:
    env = etree.QName(root).namespace
    header = root.find(f"{{{env}}}Header")
    if header is None:
        header = etree.Element(f"{{{env}}}Header")
        root.insert(0, header)
    return header
