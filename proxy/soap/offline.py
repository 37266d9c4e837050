"""`reestr-sidecar verify-message`: the signatures of a saved SOAP message, for an auditor (000 5.1).

Which signatures the message has, what each covers, algorithm, signer (subject and SHA-256),
valid or why not — the same checks the provider's sidecar makes (proxy.soap.signatures), on the
same parse. The profile is read off the message: an SMEV 3 message-exchange element in the Body
is `smev3`; a GOST signature in a `wsse:Security` header is `smev2`; anything else `plain`
(whose signature must carry its certificate in `KeyInfo/X509Data`, as the TLS certificate is
not there offline). With a bundle's signed content, a signer must also be a registered signing
certificate (`signing_certificates`); the line names its participant.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.envelope import parse_xml
from proxy.soap.errors import MessageError, SignatureError
from proxy.soap.gost import xmldsig
from proxy.soap.message import Message, read_message
from proxy.soap.profiles import SMEV3_TYPES, Profile
from proxy.soap.signatures import check_signatures
from proxy.soap.verdict import SignatureResult

DS = xmldsig.DS
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


@dataclass(frozen=True)
class Report:
    profile: Profile
    results: list[SignatureResult]
    owners: Mapping[str, str]  # signer sha256 → participant, when a bundle was given

    @property
    def ok(self) -> bool:
        """At least one signature, and every one valid."""
        return bool(self.results) and all(r.status == "valid" for r in self.results)

    def lines(self) -> list[str]:
        """One line per signature: holder, covers, algorithm, signer, verdict."""
        out = [f"profile: {self.profile}"]
        for r in self.results:
            if r.status == "absent":
                out.append(f"no signature: {r.detail}")
                continue
            signer = f"{r.subject or '?'} sha256={r.signer or '?'}"
            owner = self.owners.get(r.signer or "")
            if owner:
                signer += f" (registered to {owner})"
            verdict = "valid" if r.status == "valid" else f"NOT VALID signature-{r.status}: {r.detail}"
            out.append(f"{r.holder or '?'}: covers {', '.join(r.covers) or '?'}; {r.algorithm or '?'}; "
                       f"signer {signer}; {verdict}")
        return out


def verify_message(data: bytes, *, at: datetime, signed_bundle: Mapping[str, Any] | None) -> Report:
    """Check every signature of the saved message; MessageError if it is not a readable SOAP message."""
    profile = _profile(data)
    message = _read(data, profile)
    signers: dict[str, str] | None = None
    if signed_bundle is not None:
        table = signed_bundle.get("signing_certificates") or {}
        signers = {fp.lower(): str(entry.get("participant")) for fp, entry in table.items()}
    client = _key_info_certificate(message) if profile == "plain" else b""
    results = check_signatures(message, profile, client_certificate=client, signers=signers, at=at)
    if profile == "plain" and signers is not None and results[0].status == "valid" \
            and xmldsig_sha256(client) not in signers:
        results = [SignatureResult("wrong-signer", "the signing certificate is not registered",
                                   signer=xmldsig_sha256(client))]
    return Report(profile=profile, results=results, owners=signers or {})


def xmldsig_sha256(der: bytes) -> str:
    import hashlib

    return hashlib.sha256(der).hexdigest()


def _read(data: bytes, profile: Profile) -> Message:
    last: MessageError | None = None
    for content_type in ("text/xml; charset=utf-8", "application/soap+xml; charset=utf-8"):
        try:
            return read_message(data, content_type, [], profile)
        except MessageError as e:
            last = e
    assert last is not None
    raise last


def _profile(data: bytes) -> Profile:
    root = parse_xml(data)
    body = [el for el in root if etree.QName(el).localname == "Body"]
    content = [el for el in body[0] if isinstance(el.tag, str)] if len(body) == 1 else []
    if content and etree.QName(content[0]).namespace in SMEV3_TYPES:
        return "smev3"
    header = [el for el in root if etree.QName(el).localname == "Header"]
    for block in header[0].iter(f"{{{WSSE}}}Security") if header else ():
        if any(xmldsig.is_gost(sig) for sig in block.iter(f"{{{DS}}}Signature")):
            return "smev2"
    return "plain"


def _key_info_certificate(message: Message) -> bytes:
    for el in message.envelope.root.iter(f"{{{DS}}}X509Certificate"):
        try:
            return base64.b64decode("".join((el.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            return b""
    return b""


def when(text: str | None) -> datetime:
    """`--at`: an ISO 8601 time (UTC if no zone), or now; MessageError-free: ValueError → SidecarError."""
    from datetime import UTC

    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise OfflineError(f"--at: not an ISO 8601 time: {text!r}") from e
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read_bundle(path: Path, trusted: tuple[Path, ...]) -> Mapping[str, Any]:
    """The signed content of a bundle file; verified against `trusted` keys when given (expiry
    ignored: an old bundle still says who was registered while it was in force)."""
    import json
    from datetime import UTC

    from compiler.trust import TrustError, load_public_key, verify_envelope

    try:
        data = path.read_bytes()
        if trusted:
            return verify_envelope(data, [load_public_key(k) for k in trusted],
                                   now=datetime(1970, 1, 2, tzinfo=UTC)).signed
        signed = json.loads(data)["signed"]
    except (OSError, ValueError, KeyError, TypeError, TrustError) as e:
        raise OfflineError(f"{path}: not a readable bundle: {e}") from e
    if not isinstance(signed, dict):
        raise OfflineError(f"{path}: not a bundle")
    return signed


class OfflineError(SignatureError):
    """A bundle or option of `verify-message` that cannot be used."""

    code = "verify-message-input"
