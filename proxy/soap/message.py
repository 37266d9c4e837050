"""`read_message`: HTTP body + headers → one checked SOAP message, parsed once.

Routing, signature checks, payload validation and the journal all work on the `Message` this
returns; nothing in reestr parses the body again (docs/sidecar.md, "Routing").
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.soap import mtom
from proxy.soap.envelope import Envelope, media_type, parse_xml, read_envelope
from proxy.soap.errors import MessageError
from proxy.soap.profiles import Content, Profile, read_content


@dataclass(frozen=True, slots=True)
class Message:
    """A SOAP message as reestr read it: envelope, profile content, and MTOM parts if any."""

    envelope: Envelope
    content: Content
    multipart: bool

    @property
    def version(self) -> str:
        return self.envelope.version

    @property
    def action(self) -> str | None:
        return self.envelope.action


def read_message(body: bytes, content_type: str | None, soap_actions: list[str],
                 profile: Profile) -> Message:
    """The checked message; MessageError (`malformed-request`) for anything ambiguous or unsafe."""
    mtype, params = media_type(content_type)
    if mtype == "multipart/related":
        parts = mtom.split(body, params)
        root = parse_xml(parts.root)
        # SOAP 1.2's action may ride on start-info: `start-info="application/soap+xml; action=..."`
        action = media_type(params.get("start-info"))[1].get("action") or params.get("action")
        envelope = read_envelope(root, parts.root_media_type, action, soap_actions)
        mtom.resolve(root, parts.parts)
        multipart = True
    else:
        if not body:
            raise MessageError("empty body")
        root = parse_xml(body)
        envelope = read_envelope(root, mtype, params.get("action"), soap_actions)
        multipart = False
    return Message(envelope=envelope, content=read_content(envelope, profile), multipart=multipart)



__all__ = ["Message", "MessageError", "read_message"]
