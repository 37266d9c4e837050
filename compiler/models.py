"""The registry documents as pydantic models: the one source of truth for their shape.

The JSON Schemas in `schemas/` are generated from these classes (`compiler.schemas`), so editors,
pre-commit and the compiler all check the same contract. Unknown fields are refused everywhere
(`extra="forbid"`): a typo must not silently drop a rule. Scalars are strict: `no` is not a boolean
and `"5"` is not an integer; dates are ISO `YYYY-MM-DD` strings.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

API_VERSION = "reestr/v1"
SID_PATTERN = r"^SID[0-9]{7}$"
ID_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
OPERATION_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
# An XML NCName (XML 1.0 5th ed. NameStartChar / NameChar without ':'), written with \uXXXX escapes
# only, so the pattern means the same to pydantic (Rust regex), Python's `re` and the ECMA regexes
# of editors (no `\w`, whose meaning differs between them). Names outside the Basic Multilingual
# Plane are refused: ECMA without the `u` flag cannot express them, and no real format uses them.
_NAME_START = (r"A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF"
               r"\u200C-\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD")
_NAME_CHAR = _NAME_START + r"\-.0-9\u00B7\u0300-\u036F\u203F-\u2040"
QNAME_PATTERN = r"^\{[^{}\s]+\}[" + _NAME_START + "][" + _NAME_CHAR + "]*$"
"""An element's qualified name in Clark notation, `{namespace}Local`: a non-empty namespace without
braces or whitespace, and an NCName (Unicode letters allowed: `{urn:x}Файл`)."""
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _iso_day(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        raise ValueError("expected a date written as YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=4000)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=300)]
ParticipantId = Annotated[StrictStr, Field(pattern=ID_PATTERN)]
Sid = Annotated[StrictStr, Field(pattern=SID_PATTERN)]
OperationName = Annotated[StrictStr, Field(pattern=OPERATION_PATTERN)]
QName = Annotated[StrictStr, Field(pattern=QNAME_PATTERN, max_length=1000)]


def _https(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("expected an http(s) URL")
    return value


Url = Annotated[StrictStr, Field(max_length=500), AfterValidator(_https)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Contact(_Model):
    name: Name
    role: Name | None = None
    email: Annotated[StrictStr, Field(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[StrictStr, Field(max_length=40)] | None = None


class ParticipantType(StrEnum):
    OPERATOR = "operator"
    FEDERAL = "federal"
    REGIONAL = "regional"
    MUNICIPAL = "municipal"
    FUND = "fund"
    MFC = "mfc"
    ORGANIZATION = "organization"


class Certificate(_Model):
    """A PEM certificate; its SHA-256 fingerprint names the participant on the wire."""

    pem: Annotated[StrictStr, Field(min_length=1, max_length=20000)]
    note: Name | None = None


class Termination(_Model):
    """Notice of termination (R10): given on `notified`, access ends on `end`."""

    notified: Day
    end: Day
    reason: Text | None = None


class Agreement(_Model):
    number: Name
    signed: Day
    notice_days: Annotated[StrictInt, Field(ge=0, le=3650)] = 30
    termination: Termination | None = None


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Suspension(_Model):
    """R9: the operator suspends at once on destructive actions; since and reason are on record."""

    since: Day
    reason: Text


class ParticipantSpec(_Model):
    name: Name
    type: ParticipantType
    contacts: Annotated[list[Contact], Field(min_length=1)]
    review_team: Annotated[StrictStr, Field(pattern=r"^@[A-Za-z0-9-]+(/[A-Za-z0-9._-]+)?$")]
    certificates: list[Certificate] = []
    # R11: the information system's signature certificates (ЭП-ОВ), GOST or RSA/ECDSA; separate
    # from the TLS certificates above (docs/registry-format.md)
    signing_certificates: list[Certificate] = []
    sidecar: Url | None = None
    agreement: Agreement
    status: Status = Status.ACTIVE
    suspension: Suspension | None = None


class ParticipantMeta(_Model):
    id: ParticipantId


class Participant(_Model):
    """kind: Participant — an agency or organisation taking part in the interaction."""

    apiVersion: Literal["reestr/v1"]
    kind: Literal["Participant"]
    metadata: ParticipantMeta
    spec: ParticipantSpec


class Protocol(StrEnum):
    REST = "rest"
    SOAP = "soap"


class Classification(StrEnum):
    PUBLIC = "public"
    RESTRICTED = "restricted"
    PERSONAL_DATA = "personal-data"
    STATE_SECRET = "state-secret"  # accepted by the schema so R6 can name it; never compiled


class Method(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class Profile(StrEnum):
    """How a SOAP service's messages name their operation (docs/sidecar.md).

    `plain`: the Body's element. `smev2`: the Body's element too, signed SMEV 2 style (WS-Security
    in the Header, GOST R 34.10-2001). `smev3`: the Body's element is the SMEV 3 transport's; the
    operation (вид сведений) is the root element of the payload inside `MessagePrimaryContent`.
    """

    PLAIN = "plain"
    SMEV2 = "smev2"
    SMEV3 = "smev3"


class Deprecation(_Model):
    """R7: announced on `announced`, removed after `sunset` (at least 30 days later)."""

    announced: Day
    sunset: Day
    replacement: OperationName | None = None


class Operation(_Model):
    name: OperationName
    description: Text | None = None
    method: Method | None = None
    path: Annotated[StrictStr, Field(pattern=r"^/[^\s?#]*$", max_length=300)] | None = None
    soap_action: Annotated[StrictStr, Field(min_length=1, max_length=500)] | None = None
    body_element: QName | None = None
    payload_element: QName | None = None
    request_schema: Annotated[StrictStr, Field(pattern=r"^schemas/services/")] | None = None
    response_schema: Annotated[StrictStr, Field(pattern=r"^schemas/services/")] | None = None
    deprecation: Deprecation | None = None


class PlannedClassification(_Model):
    """R8: a change of classification announced at least 60 days before it takes effect."""

    to: Classification
    announced: Day
    effective: Day


class Tariff(_Model):
    """R13: the owner's tariff for a commercial service."""

    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    per_call: Annotated[StrictStr, Field(pattern=r"^[0-9]+(\.[0-9]{1,4})?$")]


class ServiceSpec(_Model):
    name: Name
    owner: ParticipantId
    description: Text
    protocol: Protocol
    profile: Profile = Profile.PLAIN
    classification: Classification
    signed_messages: StrictBool = False
    legal_basis: Text
    contacts: Annotated[list[Contact], Field(min_length=1)]
    tariff: Tariff | None = None
    planned_classification: PlannedClassification | None = None
    operations: Annotated[list[Operation], Field(min_length=1)]


class ServiceMeta(_Model):
    sid: Sid


class Service(_Model):
    """kind: Service — an e-service at its SID, owned by one participant."""

    apiVersion: Literal["reestr/v1"]
    kind: Literal["Service"]
    metadata: ServiceMeta
    spec: ServiceSpec


class Access(StrEnum):
    FULL = "full"
    OPERATIONS = "operations"


class Grant(_Model):
    """One row of the access sheet: a service, the access level, and the legal basis (R4)."""

    service: Sid
    access: Access
    operations: list[OperationName] | None = None
    legal_basis: StrictStr | None = None
    purpose: Text
    justification: Text | None = None
    valid_until: Day | None = None


class AccessSheetSpec(_Model):
    grants: list[Grant]


class AccessSheetMeta(_Model):
    consumer: ParticipantId


class AccessSheet(_Model):
    """kind: AccessSheet — the one technological sheet of a consumer (R1)."""

    apiVersion: Literal["reestr/v1"]
    kind: Literal["AccessSheet"]
    metadata: AccessSheetMeta
    spec: AccessSheetSpec


Document = Participant | Service | AccessSheet
KINDS: dict[str, type[Participant] | type[Service] | type[AccessSheet]] = {
    "Participant": Participant,
    "Service": Service,
    "AccessSheet": AccessSheet,
}
FOLDERS = {"participants": "Participant", "services": "Service", "consumers": "AccessSheet"}
