"""Authorship of SOAP messages (R11: 004 7б, 7г): the caller's XML signature, by the service's profile.

`check_signatures` dispatches: `smev3` / `smev2` are the GOST signatures where SMEV puts them
(proxy.soap.smev_signatures); `plain`, below, is XMLDSig RSA/ECDSA over the Body.

A `plain` service with `signed_messages: true` accepts a SOAP request only if its Body is signed with the
key of the TLS client certificate that authenticated the connection: the registered certificate
is the author, so a message signed with any other key (even a validly certified one) is invalid.

Where the signature must be (and nowhere else counts):

- `soap:Envelope/soap:Header/ds:Signature`, or
- `soap:Envelope/soap:Header/wsse:Security/ds:Signature` (WS-Security 1.0, as SMEV 2 does it),

SOAP 1.1 or 1.2, exactly one such signature. Its SignedInfo has exactly one Reference, whose URI
is `#<id>` where `<id>` is the `Id`/`wsu:Id` attribute of the envelope's one Body; the id is unique
in the document; transforms are canonicalizations only. Everything else is signature wrapping or
an unusual construction and comes out `invalid`: a second Body anywhere, a signature over the Body
placed elsewhere, a Reference to anything but the Body. Signatures elsewhere that do not sign the
Body (signed payload documents, SMEV 3 business signatures) are content: if there is no signature
at the place above, the result is `absent`.

Verification is signxml's, at the exact location, `expect_references=1`, with our algorithm list;
only `result.signed_xml` is trusted afterwards (docs/sidecar.md). The algorithm list is pluggable
(`Algorithms`); algorithms outside it (GOST on a `plain` service, SHA-1) are `unsupported`,
reported by URI, never a traceback. The message is the one parse of `proxy.soap.message` (safe
parser, DOCTYPE refused, MTOM parts inlined); signxml gets that tree, not the bytes.

No mitmproxy import: the enforce addon calls `check_signatures` with the message, the service's
profile, the DER of the client's leaf certificate and the caller's signing certificates; the
GOST profiles `smev3` / `smev2` are `proxy.soap.smev_signatures`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from lxml import etree  # type: ignore[import-untyped]
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
)
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from proxy.policy import Policy
from proxy.soap import smev_signatures
from proxy.soap.message import Message
from proxy.soap.profiles import Profile
from proxy.soap.verdict import Refused, SignatureResult, Status

__all__ = ["DEFAULT", "Algorithms", "SignatureResult", "Status", "check_signatures", "check_soap_signature",
           "requires_signature", "verdict"]

DS = "http://www.w3.org/2000/09/xmldsig#"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"

_ID_NAMES = frozenset({"Id", "ID", "id"})  # local names signxml resolves `#id` by (wsu:Id, xml:id too)
_C14N = frozenset(m.value for m in CanonicalizationMethod)
# every element carrying the id under any of those names: the id must name the Body alone
_HOLDERS = etree.XPath("//*[@*[local-name() = 'Id' or local-name() = 'ID' or local-name() = 'id'][. = $v]]")


@dataclass(frozen=True)
class Algorithms:
    """The signature and digest method URIs accepted; anything else is `unsupported`."""

    signature_methods: frozenset[str]
    digest_methods: frozenset[str]
    _config: SignatureConfiguration = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # ValueError here (at import or configuration time) if signxml cannot do a listed method
        config = SignatureConfiguration(
            require_x509=True, expect_references=1,
            signature_methods=frozenset(SignatureMethod(u) for u in self.signature_methods),
            digest_algorithms=frozenset(DigestAlgorithm(u) for u in self.digest_methods))
        object.__setattr__(self, "_config", config)

    def config(self, location: str) -> SignatureConfiguration:
        """signxml's configuration for a signature expected exactly at `location`."""
        return SignatureConfiguration(
            require_x509=True, expect_references=1, location=location,
            signature_methods=self._config.signature_methods,
            digest_algorithms=self._config.digest_algorithms)


DEFAULT = Algorithms(
    signature_methods=frozenset({SignatureMethod.RSA_SHA256.value, SignatureMethod.RSA_SHA512.value,
                                 SignatureMethod.ECDSA_SHA256.value, SignatureMethod.ECDSA_SHA384.value}),
    digest_methods=frozenset({DigestAlgorithm.SHA256.value, DigestAlgorithm.SHA384.value,
                              DigestAlgorithm.SHA512.value}))


def requires_signature(policy: Policy, sid: str | None) -> bool:
    """True if calls to `sid` must carry the caller's signature (a SOAP service, signed_messages)."""
    service = policy.services.get(sid) if sid is not None else None
    return service is not None and service.protocol == "soap" and service.signed_messages


def check_signatures(message: Message, profile: Profile, *, client_certificate: bytes,
                     signers: Mapping[str, object] | None, at: datetime) -> list[SignatureResult]:
    """Every signature of `message` by the service's profile, the decisive one first (R11).

    `plain`: the XMLDSig RSA/ECDSA signature over the Body by the TLS client's key (below).
    `smev3` / `smev2`: the GOST signatures where SMEV puts them, the author's certificate one of
    the caller's registered signing certificates `signers` (proxy.soap.smev_signatures).
    """
    if profile == "plain":
        return [check_soap_signature(message, client_certificate)]
    return smev_signatures.check(message, profile, signers=signers, at=at)


def verdict(results: list[SignatureResult]) -> SignatureResult:
    """The decision over all signatures of a message: the first refusal, else the author's."""
    return smev_signatures.verdict(results)


def check_soap_signature(message: Message, certificate_der: bytes,
                         algorithms: Algorithms = DEFAULT) -> SignatureResult:
    """Is the SOAP Body of `message` signed, at the one allowed place, by the key of this certificate?"""
    try:
        root = message.envelope.root
        envelope_ns = etree.QName(root).namespace
        body_el = _the_body(root, envelope_ns)
        signature, location = _the_signature(root, envelope_ns, body_el)
        _check_algorithms(signature, algorithms)
        body_id = _check_reference(root, signature, body_el)
        cert = _certificate(certificate_der)
        try:
            result = XMLVerifier().verify(root, x509_cert=cert, expect_config=algorithms.config(location))
        except (SignXMLException, ValueError) as e:
            raise Refused("invalid", f"verification failed: {e}") from e
        signed = result.signed_xml if isinstance(result, VerifyResult) else None
        if signed is None or signed.tag != body_el.tag or _element_id(signed) != body_id:
            raise Refused("invalid", "the signed element is not the SOAP Body")
    except Refused as refused:
        return refused.result
    method = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    value = "".join((signature.findtext(f"{{{DS}}}SignatureValue") or "").split())
    return SignatureResult("valid", f"SOAP Body #{body_id} signed by the certificate",
                           algorithm=method.get("Algorithm") if method is not None else None,
                           signer=hashlib.sha256(certificate_der).hexdigest(), holder="Header",
                           covers=(f"Body#{body_id}",),
                           value_sha256=hashlib.sha256(base64.b64decode(value)).hexdigest())


def _the_body(root: etree._Element, envelope_ns: str) -> etree._Element:
    bodies = list(root.iter(f"{{{envelope_ns}}}Body"))
    body_el = root.find(f"{{{envelope_ns}}}Body")
    if body_el is None or len(bodies) != 1:
        raise Refused("invalid", f"expected exactly one SOAP Body, found {len(bodies)}")
    return body_el


def _the_signature(root: etree._Element, envelope_ns: str,
                   body_el: etree._Element) -> tuple[etree._Element, str]:
    """The one signature at an allowed place, and signxml's location path for it."""
    header = f"./{{{envelope_ns}}}Header/"
    places = [header, f"{header}{{{WSSE}}}Security/"]
    found = [(sig, place) for place in places for sig in root.findall(f"{place}{{{DS}}}Signature")]
    if len(found) > 1:
        raise Refused("invalid", f"{len(found)} signatures in the SOAP Header, expected one")
    if found:
        return found[0]
    body_id = _element_id(body_el)
    for sig in root.iter(f"{{{DS}}}Signature"):
        uris = {ref.get("URI") for ref in sig.iter(f"{{{DS}}}Reference")}
        if "" in uris or (body_id is not None and f"#{body_id}" in uris):
            raise Refused("invalid", "a signature over the Body outside the SOAP Header")
    raise Refused("absent", "no signature in the SOAP Header")


def _check_algorithms(signature: etree._Element, algorithms: Algorithms) -> None:
    method = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    if method is None:
        raise Refused("invalid", "no SignedInfo/SignatureMethod")
    uri = method.get("Algorithm") or ""
    if uri not in algorithms.signature_methods:
        raise Refused("unsupported", f"signature method {uri!r}{_gost(uri)} is not supported")
    for digest in signature.iterfind(f"{{{DS}}}SignedInfo/{{{DS}}}Reference/{{{DS}}}DigestMethod"):
        uri = digest.get("Algorithm") or ""
        if uri not in algorithms.digest_methods:
            raise Refused("unsupported", f"digest method {uri!r}{_gost(uri)} is not supported")
    c14n = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}CanonicalizationMethod")
    if c14n is None or c14n.get("Algorithm") not in _C14N:
        raise Refused("unsupported", "SignedInfo canonicalization missing or not supported")


def _gost(uri: str) -> str:
    return " (GOST)" if "gost" in uri.lower() else ""


def _check_reference(root: etree._Element, signature: etree._Element, body_el: etree._Element) -> str:
    """The one Reference must name the Body by a unique id, with canonicalization transforms only."""
    refs = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(refs) != 1:
        raise Refused("invalid", f"expected one Reference (the SOAP Body), found {len(refs)}")
    body_id = _element_id(body_el)
    if body_id is None:
        raise Refused("invalid", "the SOAP Body has no Id / wsu:Id")
    if refs[0].get("URI") != f"#{body_id}":
        raise Refused("invalid", f"the Reference {refs[0].get('URI')!r} does not name the SOAP Body")
    holders = _HOLDERS(root, v=body_id)
    if len(holders) != 1:
        raise Refused("invalid", f"the id {body_id!r} is carried by {len(holders)} elements")
    for transform in refs[0].iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform"):
        if transform.get("Algorithm") not in _C14N:
            raise Refused("invalid", f"transform {transform.get('Algorithm')!r} is not allowed")
    return body_id


def _element_id(element: etree._Element) -> str | None:
    values = {value for name, value in element.attrib.items()
              if etree.QName(name).localname in _ID_NAMES}
    if len(values) > 1:
        raise Refused("invalid", "the SOAP Body carries conflicting ids")
    return next(iter(values), None)


def _certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise Refused("invalid", f"client certificate unreadable: {e}") from e
