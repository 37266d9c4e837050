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
_IDENTIFIERS = frozenset({"MessageID", "ReferenceMessageID", "TransactionCode"})


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
    if tag[1:].partition("}")[0] not in SMEV3_TYPES:
        raise MessageError("not an SMEV 3 message-exchange element in the Body")
    holders = list(transport_el.iter(*_SENDER_DATA))  # anywhere below: a second one is ambiguous
    if not holders:
        return Content(profile="smev3", element=None, payload=None, transport=tag)
    if len(holders) > 1:
        raise MessageError(f"{len(holders)} sender-provided data elements in one SMEV 3 message")
    data = holders[0]
    prefix = data.tag[: data.tag.index("}") + 1]
    ids: dict[str, str] = {}
    primary: list[etree._Element] = []
    for child in data:  # one pass over the sender-provided data's children
        name = child.tag
        if name in _PRIMARY:
            primary.append(child)
        elif name.__class__ is str and name.startswith(prefix) and name[len(prefix):] in _IDENTIFIERS:
            local = name[len(prefix):]
            if local in ids:
                raise MessageError(f"{local} occurs more than once")
            ids[local] = _identifier(local, child.text)
    payloads = [c for c in primary[0] if c.tag.__class__ is str] if len(primary) == 1 else []
    if primary and (len(primary) != 1 or len(payloads) != 1 or (primary[0].text or "").strip()):
        raise MessageError("MessagePrimaryContent must occur once and hold exactly one element")
    return Content(profile="smev3", element=payloads[0].tag if payloads else None,
                   payload=payloads[0] if payloads else None, transport=tag,
                   message_id=ids.get("MessageID"), reference_message_id=ids.get("ReferenceMessageID"),
                   transaction_code=ids.get("TransactionCode"))


def _identifier(name: str, text: str | None) -> str:
    value = (text or "").strip()
    if not value or len(value) > 200:
        raise MessageError(f"{name} is empty or too long")
    return value
