"""GOST signatures of real SMEV 2 / SMEV 3 messages (proxy.soap.smev_signatures), each checked at
the message's own time (their certificates expired since), and the ways to break them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from proxy.soap.errors import MessageError
from proxy.soap.message import read_message
from proxy.soap.signatures import check_signatures, verdict
from proxy.soap.verdict import SignatureResult

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SMEV3 = REAL / "gosha20777__smev-client/_docs/docs/raw_requests.SendRequestRequest.xml"
CRYPTOPRO = REAL / "CodeInside__siu/gws-crypto-cryptopro/src/test/resources"
MVVACT = REAL / "CodeInside__siu/gws-core/src/test/resources/mvvact"
AT_SMEV3 = datetime(2020, 5, 20, tzinfo=UTC)   # the request's MessageID is a time UUID of 2020-05-20
AT_SMEV2 = datetime(2012, 9, 14, 6, 23, tzinfo=UTC)  # smev:Date of the SMEV 2 samples
SMEV3_SIGNER_SUBJECT = "Комитет по архитектуре и градостроительству"
DS = "http://www.w3.org/2000/09/xmldsig#"
GOST2012 = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256"
GOST2001 = "http://www.w3.org/2001/04/xmldsig-more#gostr34102001-gostr3411"


def check(data: bytes, profile: str, at: datetime, signers: dict[str, object] | None = None) -> list[SignatureResult]:
    message = read_message(data, "text/xml; charset=utf-8", [], profile)  # type: ignore[arg-type]
    return check_signatures(message, profile, client_certificate=b"", signers=signers, at=at)  # type: ignore[arg-type]


VALID = [
    (SMEV3, "smev3", AT_SMEV3, 1, GOST2012, "SenderProvidedRequestData#SIGNED_BY_CONSUMER"),
    (CRYPTOPRO / "smev-2.xml", "smev2", AT_SMEV2, 1, GOST2001, "Body#body"),
    (CRYPTOPRO / "smev-3.xml", "smev2", AT_SMEV2, 2, GOST2001, "Body#body"),
    (MVVACT / "putData/request.xml", "smev2", AT_SMEV2, 1, GOST2001, "Body#putData"),
    (MVVACT / "updateStatus/UpdateStatus_request.xml", "smev2", AT_SMEV2, 1, GOST2001, "Body#updateStatus"),
]


@pytest.mark.parametrize(("path", "profile", "at", "count", "algorithm", "covers"), VALID,
                         ids=["smev3-egrz-gost2012", "smev2-cryptopro", "smev2-two-signatures",
                              "smev2-mvvact-putdata", "smev2-mvvact-updatestatus"])
def test_real_messages_verify(path: Path, profile: str, at: datetime, count: int, algorithm: str,
                              covers: str) -> None:
    results = check(path.read_bytes(), profile, at)
    assert [r.status for r in results] == ["valid"] * count, [r.detail for r in results]
    author = verdict(results)
    assert author.algorithm == algorithm and covers in author.covers
    assert author.signer is not None and len(author.signer) == 64
    # registered: the same check with the author's certificate as the caller's signing certificate
    assert verdict(check(path.read_bytes(), profile, at, {author.signer: object()})).status == "valid"


def test_smev3_signer_is_the_real_one() -> None:
    author = verdict(check(SMEV3.read_bytes(), "smev3", AT_SMEV3))
    assert author.subject is not None and SMEV3_SIGNER_SUBJECT in author.subject
    assert author.journal == f"valid {GOST2012} {author.signer}"


def _tree(path: Path) -> etree._Element:
    return etree.fromstring(path.read_bytes())


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _data(root: etree._Element) -> etree._Element:
    (el,) = root.xpath("//*[local-name()='SenderProvidedRequestData']")
    return el


def _smev3_changed_body(root: etree._Element) -> None:
    (mid,) = root.xpath("//*[local-name()='MessageID']")
    mid.text = "39f52a38-9a54-11ea-b23a-3316e2108090"


def _smev3_changed_payload(root: etree._Element) -> None:
    (number,) = root.xpath("//*[local-name()='ExpertiseResultNumber']")
    number.text = "00-1-2-3-000011-2000"


def _smev3_duplicated_id(root: etree._Element) -> None:
    header = root[0]
    header.append(copy.deepcopy(_data(root)))  # a second element carries Id="SIGNED_BY_CONSUMER"


def _smev3_wrapped(root: etree._Element) -> None:
    """The signed element moved into the Header, a forged one (no Id) put where it was."""
    data = _data(root)
    forged = copy.deepcopy(data)
    del forged.attrib["Id"]
    (number,) = forged.xpath(".//*[local-name()='ExpertiseResultNumber']")
    number.text = "66-6-6-6-000666-2000"
    data.addprevious(forged)
    root[0].append(data)


def _smev3_reference_elsewhere(root: etree._Element) -> None:
    (ref,) = root.iter(f"{{{DS}}}Reference")
    ref.set("URI", "#OTHER")
    (primary,) = root.xpath("//*[local-name()='MessagePrimaryContent']")
    primary.set("Id", "OTHER")


def _smev3_unsupported(root: etree._Element) -> None:
    (method,) = root.iter(f"{{{DS}}}SignatureMethod")
    method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#gostr34102001-gostr3411-x")


def _smev3_unsupported_transform(root: etree._Element) -> None:
    (t,) = [t for t in root.iter(f"{{{DS}}}Transform") if "smev" in t.get("Algorithm", "")]
    t.set("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")


def _smev3_no_signature(root: etree._Element) -> None:
    (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
    holder.getparent().remove(holder)


def _smev3_two_signatures(root: etree._Element) -> None:
    (holder,) = root.xpath("//*[local-name()='CallerInformationSystemSignature']")
    holder.addnext(copy.deepcopy(holder))


def _smev3_signature_value(root: etree._Element) -> None:
    (value,) = root.iter(f"{{{DS}}}SignatureValue")
    value.text = value.text[:10] + ("A" if value.text[10] != "A" else "B") + value.text[11:]


SMEV3_BROKEN: list[tuple[str, Callable[[etree._Element], None], str]] = [
    ("changed-message-id", _smev3_changed_body, "invalid"),
    ("changed-payload", _smev3_changed_payload, "invalid"),
    ("duplicated-id", _smev3_duplicated_id, "invalid"),
    ("wrapped-signed-element-moved", _smev3_wrapped, "invalid"),
    ("reference-to-another-element", _smev3_reference_elsewhere, "invalid"),
    ("signature-value-changed", _smev3_signature_value, "invalid"),
    ("unsupported-method", _smev3_unsupported, "unsupported"),
    ("unsupported-transform", _smev3_unsupported_transform, "unsupported"),
    ("no-signature", _smev3_no_signature, "absent"),
    ("two-signatures", _smev3_two_signatures, "invalid"),
]


@pytest.mark.parametrize(("name", "breaks", "status"), SMEV3_BROKEN, ids=[c[0] for c in SMEV3_BROKEN])
def test_smev3_broken(name: str, breaks: Callable[[etree._Element], None], status: str) -> None:
    root = _tree(SMEV3)
    breaks(root)
    result = verdict(check(_xml(root), "smev3", AT_SMEV3))
    assert result.status == status, result.detail
    assert result.reason == f"signature-{status}"


def test_smev3_second_payload_is_refused_before_signatures() -> None:
    root = _tree(SMEV3)
    _data(root).addnext(copy.deepcopy(_data(root)))
    with pytest.raises(MessageError):
        check(_xml(root), "smev3", AT_SMEV3)


@pytest.mark.parametrize(("signers", "at", "status"), [
    ({"00" * 32: object()}, AT_SMEV3, "wrong-signer"),
    ({}, AT_SMEV3, "wrong-signer"),
    (None, datetime(2021, 1, 1, tzinfo=UTC), "certificate-expired"),
    (None, datetime(2019, 1, 1, tzinfo=UTC), "certificate-expired"),
], ids=["another-participants-certificate", "caller-registered-none", "after-expiry", "before-validity"])
def test_smev3_signer_and_time(signers: dict[str, object] | None, at: datetime, status: str) -> None:
    result = verdict(check(SMEV3.read_bytes(), "smev3", at, signers))
    assert result.status == status, result.detail
    assert result.algorithm == GOST2012 and result.signer is not None  # journaled with who signed


WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def _smev2_changed_body(root: etree._Element) -> None:
    (code,) = root.xpath("//*[local-name()='okato']")
    code.text = "22222222222"


def _smev2_token_elsewhere(root: etree._Element) -> None:
    (token,) = root.iter(f"{{{WSSE}}}BinarySecurityToken")
    root[0].append(token)  # out of its wsse:Security block


def _smev2_body_id_twice(root: etree._Element) -> None:
    body = root[1]
    extra = etree.SubElement(root[0], "x")
    extra.set("{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id",
              body.get("{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id"))


def _smev2_no_signature(root: etree._Element) -> None:
    (sig,) = root.iter(f"{{{DS}}}Signature")
    sig.getparent().remove(sig)


def _smev2_reference_not_body(root: etree._Element) -> None:
    (ref,) = [r for r in root.iter(f"{{{DS}}}Reference") if r.getparent().tag == f"{{{DS}}}SignedInfo"]
    ref.set("URI", "#AppData")


def _smev2_many_references(root: etree._Element) -> None:
    (ref,) = [r for r in root.iter(f"{{{DS}}}Reference") if r.getparent().tag == f"{{{DS}}}SignedInfo"]
    for _ in range(8):
        ref.addnext(copy.deepcopy(ref))


SMEV2_BROKEN: list[tuple[str, Callable[[etree._Element], None], str]] = [
    ("too-many-references", _smev2_many_references, "invalid"),
    ("changed-body", _smev2_changed_body, "invalid"),
    ("token-outside-its-block", _smev2_token_elsewhere, "invalid"),
    ("body-id-twice", _smev2_body_id_twice, "invalid"),
    ("reference-not-the-body", _smev2_reference_not_body, "invalid"),
    ("no-signature", _smev2_no_signature, "absent"),
]


@pytest.mark.parametrize(("name", "breaks", "status"), SMEV2_BROKEN, ids=[c[0] for c in SMEV2_BROKEN])
def test_smev2_broken(name: str, breaks: Callable[[etree._Element], None], status: str) -> None:
    root = _tree(CRYPTOPRO / "smev-2.xml")
    breaks(root)
    result = verdict(check(_xml(root), "smev2", AT_SMEV2))
    assert result.status == status, result.detail


@pytest.mark.parametrize("name", ["smev-1.xml", "modified-smev-3.xml"], ids=["smev-1", "modified-smev-3"])
def test_real_negative_messages_are_refused(name: str) -> None:
    result = verdict(check((CRYPTOPRO / name).read_bytes(), "smev2", AT_SMEV2))
    assert result.status == "invalid" and "digest" in result.detail


def test_reference_count_is_capped_before_any_digest() -> None:
    root = _tree(CRYPTOPRO / "smev-2.xml")
    _smev2_many_references(root)
    result = verdict(check(_xml(root), "smev2", AT_SMEV2))
    assert result.status == "invalid" and "9 References" in result.detail
