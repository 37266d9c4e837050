"""Message profiles: where in a SOAP message the operation's element is, and its identifiers.

- `plain`: the operation is the Body's one element (its Clark name); that element is the payload.
- `smev2`: read as `plain`; only its signatures differ (WS-Security, GOST R 34.10-2001).
- `smev3`: the Body's element is always the transport's (`SendRequestRequest`,
  `SendResponseRequest`, `GetRequestResponse`, `GetResponseResponse`, SMEV 3 message exchange
  types 1.1, 1.2 or 1.3) and the kind of information (вид сведений) is the root element of the
  payload inside `MessagePrimaryContent` of the one `SenderProvidedRequestData` /
  `SenderProvidedResponseData`. The transport envelope is read leniently (real messages drift
  from the transport XSDs between versions: docs/sidecar.md); the payload is checked strictly
  against the service's schema. `MessageID`, `ReferenceMessageID` and `TransactionCode` are
  taken from the sender-provided data for the journal.

A message a profile cannot read unambiguously is a MessageError (`malformed-request`); an SMEV 3
message that carries no payload (an Ack, a status request...) has `element` None, which no
operation matches (`unknown-operation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.envelope import Envelope
from proxy.soap.errors import MessageError

Profile = Literal["plain", "smev2", "smev3"]
PROFILES: frozenset[str] = frozenset({"plain", "smev2", "smev3"})

SMEV3_TYPES = tuple(f"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/{v}"
                    for v in ("1.1", "1.2", "1.3"))
SMEV3_BASIC = tuple(f"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/{v}"
                    for v in ("1.1", "1.2", "1.3"))
_SENDER_DATA = frozenset(f"{{{ns}}}{name}" for ns in SMEV3_TYPES
                         for name in ("SenderProvidedRequestData", "SenderProvidedResponseData"))
_PRIMARY = frozenset(f"{{{ns}}}MessagePrimaryContent" for ns in SMEV3_BASIC)
_IDENTIFIERS = ("MessageID", "ReferenceMessageID", "TransactionCode")


@dataclass(frozen=True, slots=True)
class Content:
    """What the profile reads off a message: the element that names the operation (Clark), the
    element its schema validates, and the message's own identifiers."""

    profile: Profile
    element: str | None
    payload: etree._Element | None
    transport: str
    message_id: str | None = None
    reference_message_id: str | None = None
    transaction_code: str | None = None


def read_content(envelope: Envelope, profile: Profile) -> Content:
    transport = envelope.content.tag
    if profile != "smev3":
        return Content(profile=profile, element=transport, payload=envelope.content, transport=transport)
    return _smev3(envelope.content)


def _smev3(transport_el: etree._Element) -> Content:
    tag = transport_el.tag
    namespace = etree.QName(tag).namespace
    if namespace not in SMEV3_TYPES:
        raise MessageError("not an SMEV 3 message-exchange element in the Body")
    holders = [el for el in transport_el.iter(*_SENDER_DATA)]
    if not holders:
        return Content(profile="smev3", element=None, payload=None, transport=tag)
    if len(holders) > 1:
        raise MessageError(f"{len(holders)} sender-provided data elements in one SMEV 3 message")
    data = holders[0]
    ids = {name: _text(data, f"{{{etree.QName(data).namespace}}}{name}") for name in _IDENTIFIERS}
    primary = [child for child in data if child.tag in _PRIMARY]
    if not primary:
        return Content(profile="smev3", element=None, payload=None, transport=tag,
                       message_id=ids["MessageID"], reference_message_id=ids["ReferenceMessageID"],
                       transaction_code=ids["TransactionCode"])
    payloads = [child for child in primary[0] if isinstance(child.tag, str)] if len(primary) == 1 else []
    if len(primary) != 1 or len(payloads) != 1 or (primary[0].text or "").strip():
        raise MessageError("MessagePrimaryContent must occur once and hold exactly one element")
    return Content(profile="smev3", element=payloads[0].tag, payload=payloads[0], transport=tag,
                   message_id=ids["MessageID"], reference_message_id=ids["ReferenceMessageID"],
                   transaction_code=ids["TransactionCode"])


def _text(parent: etree._Element, tag: str) -> str | None:
    found = parent.findall(tag)
    if len(found) > 1:
        raise MessageError(f"{etree.QName(tag).localname} occurs {len(found)} times")
    if not found:
        return None
    value = (found[0].text or "").strip()
    if not value or len(value) > 200:
        raise MessageError(f"{etree.QName(tag).localname} is empty or too long")
    return value
