"""Signing a message as its profile wants it, and checking an answer's author (R11).

One place for "which signature, where, with which key", used by both sidecars:

- `smev3`: `CallerInformationSystemSignature` / `SenderInformationSystemSignature` over the
  sender-provided data, with the agency's ЭП-ОВ signer (proxy.soap.signing.sign_smev3);
- `smev2`: WS-Security in the Header, GOST, with the same ЭП-ОВ signer (header_signing.sign_smev2);
- `plain`: XMLDSig RSA / ECDSA in the Header with the key of the sidecar's TLS certificate on
  that side — the client certificate for requests, the server certificate for answers — since a
  `plain` signature must be by the key that authenticates the connection (header_signing.sign_plain).

`sign` returns the `SignatureResult` of what it made (for the journal); `check_answer` is the
consumer's check of a signed service's answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap import smev_signatures
from proxy.soap.header_signing import has_header_signature, sign_plain, sign_smev2
from proxy.soap.message import Message
from proxy.soap.profiles import Profile
from proxy.soap.signatures import check_soap_signature
from proxy.soap.signing import Signer, SigningError, sign_smev3
from proxy.soap.verdict import SignatureResult

_SMEV3_HOLDERS = frozenset({"CallerInformationSystemSignature", "SenderInformationSystemSignature"})


@dataclass(frozen=True)
class Signers:
    """The keys one side of a sidecar signs with: the agency's ЭП-ОВ (GOST; `signatures.signer`)
    and the TLS key of that side (RSA / ECDSA), either None when not configured."""

    gost: Signer | None
    tls: Signer | None

    def for_profile(self, profile: Profile) -> Signer | None:
        return self.tls if profile == "plain" else self.gost


def names(root: etree._Element) -> set[str]:
    """Local names of the message's elements (one walk)."""
    return {etree.QName(el).localname for el in root.iter() if isinstance(el.tag, str)}


def already_signed(root: etree._Element, profile: Profile) -> bool:
    """True if the message carries its profile's signature already (its system signed it)."""
    if profile == "smev3":
        return bool(names(root) & _SMEV3_HOLDERS)
    return has_header_signature(root)


def sign(root: etree._Element, profile: Profile, signer: Signer | None) -> SignatureResult:
    """Sign the message in place by its profile; SigningError if it cannot be signed."""
    if signer is None:
        raise SigningError(f"no signer for {profile} messages is configured")
    if profile == "smev3":
        sign_smev3(root, signer)
        holder = "SenderInformationSystemSignature" if "SenderInformationSystemSignature" in names(root) \
            else "CallerInformationSystemSignature"
    elif profile == "smev2":
        sign_smev2(root, signer)
        holder = "Security"
    else:
        sign_plain(root, signer)
        holder = "Header"
    return SignatureResult("valid", "signed by this sidecar", algorithm=signer.method,
                           signer=hashlib.sha256(signer.certificate).hexdigest(), holder=holder)


def check(message: Message, profile: Profile, *, certificate: bytes, signers: Mapping[str, object] | None,
          at: datetime) -> SignatureResult:
    """The decisive result over a message's signatures: `smev3` / `smev2` against the registered
    signing certificates `signers` (None: cryptography alone), `plain` against `certificate`
    (the DER of the TLS certificate of the side that sent it)."""
    if profile == "plain":
        return check_soap_signature(message, certificate)
    return smev_signatures.verdict(smev_signatures.check(message, profile, signers=signers, at=at))
