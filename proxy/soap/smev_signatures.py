"""Where SMEV puts its signatures, and which one is the author's (R11: 004 §7б).

- `smev3`: the one `CallerInformationSystemSignature` (a request) or
  `SenderInformationSystemSignature` (a response) in the Body holds one ds:Signature whose one
  Reference names the one `SenderProvidedRequestData` / `SenderProvidedResponseData` by its `Id`
  (exclusive c14n + the SMEV transform; GOST R 34.10-2012 256/512), with the signer's certificate
  in `KeyInfo/X509Data`. The payload that is routed and validated lies inside the signed element.
- `smev2`: WS-Security in the Header: each `wsse:Security` holds at most one ds:Signature, its
  certificate in a `wsse:BinarySecurityToken` of the same block named by the
  `SecurityTokenReference`; the author's is the one with actor `http://smev.gosuslugi.ru/actors/smev`
  (or the only one), and it must cover the Body by its `wsu:Id`. Other blocks (SMEV's own,
  actor `.../recipient`) are verified too, their signer not matched.

Signatures elsewhere (inside the payload, business signatures) are content. `check` returns
one result per signature found, the author's first; the sidecar's verdict is the first that is
not valid, else the author's. The author's certificate must be one the caller registered as a
signing certificate (`signers`, None: cryptography alone) and valid at `at`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.gost import xmldsig
from proxy.soap.message import Message
from proxy.soap.profiles import SMEV3_TYPES
from proxy.soap.verdict import Refused, SignatureResult

DS = xmldsig.DS
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SMEV2_ACTOR = "http://smev.gosuslugi.ru/actors/smev"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
_CONTAINERS = tuple(f"{{{ns}}}{name}" for ns in SMEV3_TYPES
                    for name in ("CallerInformationSystemSignature", "SenderInformationSystemSignature"))
_SENDER_DATA = tuple(f"{{{ns}}}{name}" for ns in SMEV3_TYPES
                     for name in ("SenderProvidedRequestData", "SenderProvidedResponseData"))


@dataclass(frozen=True)
class _Found:
    holder: etree._Element
    signature: etree._Element
    certificate: bytes
    author: bool
    must_cover: etree._Element | None


def check(message: Message, profile: str, *, signers: Mapping[str, object] | None,
          at: datetime) -> list[SignatureResult]:
    """Every signature of an `smev3` / `smev2` message, checked; [absent] if there is none."""
    root = message.envelope.root
    try:
        found = _smev3(message) if profile == "smev3" else _smev2(root, message.envelope.body)
    except Refused as refused:
        return [refused.result]
    return [_verify(root, f, profile == "smev3", signers, at) for f in found]


def verdict(results: list[SignatureResult]) -> SignatureResult:
    """The sidecar's decision over all signatures: the first refusal, else the author's."""
    return next((r for r in results if r.status != "valid"), results[0])


def _verify(root: etree._Element, found: _Found, smev: bool, signers: Mapping[str, object] | None,
            at: datetime) -> SignatureResult:
    holder = etree.QName(found.holder).localname
    try:
        ok = xmldsig.verify(root, found.signature, found.certificate, smev_transform=smev)
        covers = tuple(_describe(el) for el in ok.covered)
        known = {"algorithm": ok.algorithm, "signer": ok.certificate.sha256,
                 "subject": ok.certificate.subject, "holder": holder}
        if found.must_cover is not None and not any(el is found.must_cover for el in ok.covered):
            raise Refused("invalid", f"the signature does not cover {_describe(found.must_cover)}", **known)
        if found.author and not ok.certificate.valid_at(at):
            raise Refused("certificate-expired", f"the signing certificate is not valid at {at.isoformat()}",
                          **known)
        if found.author and signers is not None and ok.certificate.sha256 not in signers:
            raise Refused("wrong-signer", "signed by a certificate the caller has not registered", **known)
    except Refused as refused:
        r = refused.result
        declared = tuple(f"{ref.get('URI')} (declared)" for ref in
                         found.signature.iterfind(f"{{{DS}}}SignedInfo/{{{DS}}}Reference"))
        return SignatureResult(r.status, r.detail, algorithm=r.algorithm, signer=r.signer,
                               subject=r.subject, holder=holder, covers=declared)
    value = _b64(found.signature.findtext(f"{{{DS}}}SignatureValue"))
    return SignatureResult("valid", f"{holder}: {', '.join(covers)} signed", algorithm=ok.algorithm,
                           signer=ok.certificate.sha256, subject=ok.certificate.subject, holder=holder,
                           covers=covers, value_sha256=hashlib.sha256(value).hexdigest())


def _describe(el: etree._Element) -> str:
    el_id = xmldsig.element_id(el)
    local: str = etree.QName(el).localname
    return local + (f"#{el_id}" if el_id else "")


def _smev3(message: Message) -> list[_Found]:
    body = message.envelope.body
    containers = list(body.iter(*_CONTAINERS))
    if not containers:
        raise Refused("absent", "no CallerInformationSystemSignature / SenderInformationSystemSignature")
    if len(containers) != 1:
        raise Refused("invalid", f"{len(containers)} information-system signatures in one message")
    signatures = containers[0].findall(f"{{{DS}}}Signature")
    if len(signatures) != 1 or len(containers[0]) != 1:
        raise Refused("invalid", "the information-system signature must hold exactly one ds:Signature")
    data = list(body.iter(*_SENDER_DATA))
    if len(data) != 1:
        raise Refused("invalid", f"{len(data)} sender-provided data elements")
    if len(signatures[0].findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")) != 1:
        raise Refused("invalid", "the SMEV 3 signature must have exactly one Reference")
    payload = message.content.payload
    if payload is not None and not any(a is data[0] for a in payload.iterancestors()):
        raise Refused("invalid", "the payload is not inside the signed element")  # pragma: no cover
    certs = signatures[0].findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if len(certs) != 1:
        raise Refused("invalid", "expected one KeyInfo/X509Data/X509Certificate")
    return [_Found(containers[0], signatures[0], _b64(certs[0].text), author=True, must_cover=data[0])]


def _smev2(root: etree._Element, body: etree._Element) -> list[_Found]:
    header = root.find(f"{{{etree.QName(root).namespace}}}Header")
    blocks = header.findall(f"{{{WSSE}}}Security") if header is not None else []
    pairs = [(b, s) for b in blocks for s in b.findall(f"{{{DS}}}Signature")]
    if not pairs:
        raise Refused("absent", "no ds:Signature in a wsse:Security header")
    if any(len(b.findall(f"{{{DS}}}Signature")) > 1 for b in blocks):
        raise Refused("invalid", "a wsse:Security block holds more than one signature")
    authors = [p for p in pairs if _actor(p[0]) == SMEV2_ACTOR] or (pairs if len(pairs) == 1 else [])
    if len(authors) != 1:
        raise Refused("invalid", f"{len(authors)} signatures with actor {SMEV2_ACTOR}, expected one")
    found = []
    for block, sig in sorted(pairs, key=lambda p: p is not authors[0]):
        found.append(_Found(block, sig, _token(root, block, sig), author=sig is authors[0][1],
                            must_cover=body if sig is authors[0][1] else None))
    return found


def _actor(block: etree._Element) -> str | None:
    return next((v for k, v in block.attrib.items() if etree.QName(k).localname == "actor"), None)


def _token(root: etree._Element, block: etree._Element, sig: etree._Element) -> bytes:
    refs = sig.findall(f"{{{DS}}}KeyInfo/{{{WSSE}}}SecurityTokenReference/{{{WSSE}}}Reference")
    if len(refs) != 1:
        raise Refused("invalid", "expected one KeyInfo/SecurityTokenReference/Reference")
    token = xmldsig.by_id(root, refs[0].get("URI"))
    if token.tag != f"{{{WSSE}}}BinarySecurityToken" or token.getparent() is not block \
            or token.get("ValueType") != X509V3:
        raise Refused("invalid", "the token reference does not name an X.509 BinarySecurityToken of its block")
    return _b64(token.text)


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise Refused("invalid", "a certificate's base64 is malformed") from e
