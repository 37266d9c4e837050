"""One XMLDSig signature with GOST algorithms, verified on the one parse of the message.

SignedInfo is canonicalised with exclusive c14n (the only CanonicalizationMethod accepted) and
hashed with the signature method's digest; each Reference names one element by `#id`, carried by
exactly one element of the document (signature wrapping otherwise); its transforms are exclusive
c14n and, for SMEV 3, the SMEV transform; nothing else is executed. Algorithms reestr does not
implement are `unsupported`, named by URI. The caller decides which elements a signature must
cover and whose certificate it must be; this module only says what it covers and that it holds.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.gost import certs, curves, hashes, transform
from proxy.soap.verdict import Refused

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_CP = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:"
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"

#: signature method URI → (digest URI, public key algorithm OID)
SIGNATURE_METHODS = {
    f"{_CP}gostr34102012-gostr34112012-256": (hashes.STREEBOG_256, "1.2.643.7.1.1.1.1"),
    f"{_CP}gostr34102012-gostr34112012-512": (hashes.STREEBOG_512, "1.2.643.7.1.1.1.2"),
    f"{_MORE}gostr34102001-gostr3411": (hashes.GOST94, "1.2.643.2.2.19"),
    f"{_CP}gostr34102001-gostr3411": (hashes.GOST94, "1.2.643.2.2.19"),
}
DIGEST_METHODS = {hashes.STREEBOG_256: hashes.STREEBOG_256, hashes.STREEBOG_512: hashes.STREEBOG_512,
                  hashes.GOST94: hashes.GOST94, f"{_CP}gostr3411": hashes.GOST94}
_ID_NAMES = frozenset({"Id", "ID", "id"})
# References per signature: SMEV 3 has one, SMEV 2 one or two (Body, smev:Header). Each costs a
# canonicalisation and a digest of what it names, so an unbounded list would let one 1 MB message
# make the sidecar hash gigabytes (nested elements named again and again).
MAX_REFERENCES = 8
_HOLDERS = etree.XPath("//*[@*[local-name() = 'Id' or local-name() = 'ID' or local-name() = 'id'][. = $v]]")


def is_gost(signature: etree._Element) -> bool:
    """True if the signature's method is one of the GOST methods (or looks like one)."""
    method = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    uri = (method.get("Algorithm") or "") if method is not None else ""
    return uri in SIGNATURE_METHODS or "gost" in uri.lower()


@dataclass(frozen=True)
class Verified:
    """A signature that holds: its method, its certificate and the elements it covers."""

    algorithm: str
    certificate: certs.GostCertificate
    covered: tuple[etree._Element, ...]


def element_id(element: etree._Element) -> str | None:
    """The element's Id / ID / id / wsu:Id; Refused if it carries several different ones."""
    values = {v for name, v in element.attrib.items() if etree.QName(name).localname in _ID_NAMES}
    if len(values) > 1:
        raise Refused("invalid", f"{etree.QName(element).localname} carries conflicting ids")
    return next(iter(values), None)


def by_id(root: etree._Element, uri: str | None) -> etree._Element:
    """The one element that `#id` names; Refused if none or several carry the id."""
    if not uri or not uri.startswith("#") or len(uri) < 2:
        raise Refused("invalid", f"reference {uri!r} is not a same-document #id")
    holders = _HOLDERS(root, v=uri[1:])
    if len(holders) != 1:
        raise Refused("invalid", f"the id {uri[1:]!r} is carried by {len(holders)} elements")
    return holders[0]


def verify(root: etree._Element, signature: etree._Element, certificate_der: bytes, *,
           smev_transform: bool) -> Verified:
    """Check `signature` (a ds:Signature in `root`'s document) against the certificate."""
    info = _one(signature, f"{{{DS}}}SignedInfo")
    method_el = _one(info, f"{{{DS}}}SignatureMethod")
    algorithm = method_el.get("Algorithm") or ""
    known = {"algorithm": algorithm}
    if algorithm not in SIGNATURE_METHODS:
        raise Refused("unsupported", f"signature method {algorithm!r} is not supported", **known)
    c14n = _one(info, f"{{{DS}}}CanonicalizationMethod").get("Algorithm")
    if c14n != EXC_C14N:
        raise Refused("unsupported", f"SignedInfo canonicalization {c14n!r} is not supported", **known)
    digest_uri, key_algorithm = SIGNATURE_METHODS[algorithm]
    try:
        cert = _read_certificate(certificate_der)
    except certs.CertificateError as e:
        raise Refused("invalid", str(e), **known) from e
    known |= {"signer": cert.sha256, "subject": cert.subject}
    if cert.key_algorithm != key_algorithm:
        raise Refused("invalid", f"a {cert.key_algorithm} key cannot make a {algorithm} signature", **known)
    refs = info.findall(f"{{{DS}}}Reference")
    if not refs or len(refs) > MAX_REFERENCES:
        raise Refused("invalid", f"SignedInfo has {len(refs)} References (1 to {MAX_REFERENCES})", **known)
    covered = tuple(_check_reference(root, ref, smev_transform, known) for ref in refs)
    if len({id(el) for el in covered}) != len(covered):
        raise Refused("invalid", "two References name the same element", **known)
    digest = _digest(digest_uri, known)(etree.tostring(info, method="c14n", exclusive=True))
    value = _b64(_one(signature, f"{{{DS}}}SignatureValue").text, known)
    if not curves.verify(cert.curve, cert.public, digest, value):
        raise Refused("invalid", "the signature value does not verify", **known)
    return Verified(algorithm=algorithm, certificate=cert, covered=covered)


# pyasn1 takes ~2 ms to parse a certificate, as long as the rest of a verify; the same few signing
# certificates sign every message, so parses are cached per process by DER (256 entries, ~1 MB at
# most; a certificate that does not parse raises and is not cached). bench/gost_bench.py shows it.
_read_certificate = functools.lru_cache(maxsize=256)(certs.read)


def _check_reference(root: etree._Element, ref: etree._Element, smev: bool,
                     known: dict[str, str]) -> etree._Element:
    target = by_id(root, ref.get("URI"))
    transforms = [t.get("Algorithm") for t in ref.iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
    allowed = ([EXC_C14N, transform.URI], [transform.URI], [EXC_C14N]) if smev else ([EXC_C14N],)
    if transforms not in allowed:
        raise Refused("unsupported", f"transforms {transforms} are not supported here", **known)
    method = _one(ref, f"{{{DS}}}DigestMethod").get("Algorithm") or ""
    if method not in DIGEST_METHODS:
        raise Refused("unsupported", f"digest method {method!r} is not supported", **known)
    data = (transform.apply(target) if transform.URI in transforms
            else etree.tostring(target, method="c14n", exclusive=True))
    expected = _b64(_one(ref, f"{{{DS}}}DigestValue").text, known)
    if _digest(DIGEST_METHODS[method], known)(data) != expected:
        raise Refused("invalid", f"the digest of #{ref.get('URI', '')[1:]} does not match", **known)
    return target


def _digest(uri: str, known: dict[str, str]) -> Callable[[bytes], bytes]:
    fn = hashes.DIGESTS.get(uri)
    if fn is None:  # pragma: no cover - only without OpenSSL's GOST provider
        raise Refused("unsupported", f"{uri}: {hashes.MISSING}", **known)
    return fn


def _one(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise Refused("invalid", f"expected one {etree.QName(tag).localname}, found {len(found)}")
    return found[0]


def _b64(text: str | None, known: dict[str, str]) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise Refused("invalid", "a base64 value is malformed", **known) from e
