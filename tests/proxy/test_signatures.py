"""R11 authorship: the caller's XML signature over the SOAP Body (proxy.soap.signatures), and the same
check through a real in-process sidecar (real TLS, real mitmproxy, real journal)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.signer import XMLSigner

from proxy.policy import parse_policy
from proxy.soap.errors import MessageError
from proxy.soap.message import read_message
from proxy.soap.signatures import DEFAULT, Algorithms, SignatureResult, requires_signature
from proxy.soap.signatures import check_soap_signature as check_message
from tests.proxy.conftest import Keys, Pki, Upstream, signed_bundle
from tests.proxy.test_runner import Running, records, run_sidecar

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
DS = "http://www.w3.org/2000/09/xmldsig#"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SMEV3 = REAL / "burcevsemyon__Smev3Sharp/Smev3Client.Tests/TestData"
SMEV2 = REAL / "CodeInside__siu/gws-core/src/test/resources/mvvact"
XROAD = REAL / "nordic-institute__X-Road/src/addons/messagelog/messagelog-addon/src/test/resources"


# --- signing helpers ----------------------------------------------------------------------------


class Signer:
    """A private key and its certificate, as PEM for signxml and DER for the check."""

    def __init__(self, key: Any, cert: x509.Certificate, algorithm: str) -> None:
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self.algorithm = algorithm


def rsa_signer() -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa caller")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return Signer(key, cert, "rsa-sha256")


@pytest.fixture(scope="module")
def signers(pki: Pki) -> dict[str, Signer]:
    return {"rsa": rsa_signer(),
            "ec": Signer(pki.clients["ved1"].key, pki.clients["ved1"].cert, "ecdsa-sha256"),
            "ec2": Signer(pki.clients["ved2"].key, pki.clients["ved2"].cert, "ecdsa-sha256")}


def envelope(soap: str = SOAP11, body_id: str | None = "body-1", payload: str = "<t:GetStatus>42</t:GetStatus>",
             wsu: bool = False) -> etree._Element:
    id_attr = "" if body_id is None else (f' wsu:Id="{body_id}"' if wsu else f' Id="{body_id}"')
    return etree.fromstring(
        f'<s:Envelope xmlns:s="{soap}" xmlns:t="urn:test" xmlns:wsu="{WSU}">'
        f'<s:Header><t:Route>ved1</t:Route></s:Header>'
        f'<s:Body{id_attr}>{payload}</s:Body></s:Envelope>')


def signature(root: etree._Element, signer: Signer, uri: str = "#body-1") -> etree._Element:
    """A detached signature over the element `uri` names, made by signxml (not yet placed).

    Exclusive c14n, as WS-Security does: the signature is made outside the envelope and then
    placed in its Header, where inclusive c14n would pick up the envelope's namespaces."""
    sig: etree._Element = XMLSigner(method=methods.detached, signature_algorithm=signer.algorithm,
                                    digest_algorithm="sha256", c14n_algorithm=EXC_C14N).sign(
        root, key=signer.key_pem, cert=signer.cert_pem.decode(), reference_uri=uri)
    return sig


def signed(signer: Signer, soap: str = SOAP11, wsse: bool = False) -> etree._Element:
    root = envelope(soap, wsu=wsse)
    sig = signature(root, signer)
    header = root.find(f"{{{soap}}}Header")
    assert header is not None
    if wsse:
        security = etree.SubElement(header, f"{{{WSSE}}}Security")
        security.append(sig)
    else:
        header.append(sig)
    return root


def xml(root: etree._Element) -> bytes:
    return etree.tostring(root)


def _header(root: etree._Element) -> etree._Element:
    header = root.find(f"{{{SOAP11}}}Header")
    assert header is not None
    return header


def _body(root: etree._Element) -> etree._Element:
    body = root.find(f"{{{SOAP11}}}Body")
    assert body is not None
    return body


# --- bad and good messages, each built from a correctly signed one ------------------------------

Case = Callable[[dict[str, Signer]], tuple[bytes, bytes]]  # -> (body, certificate DER)


def check_soap_signature(body: bytes, der: bytes, algorithms: Algorithms = DEFAULT) -> SignatureResult:
    """The check as the sidecar runs it: on the one parse of the message layer."""
    ctype = "application/soap+xml" if SOAP12.encode() in body[:400] else "text/xml"
    return check_message(read_message(body, ctype, [], "plain"), der, algorithms)


def _tampered(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    return xml(signed(s["ec"])).replace(b">42<", b">43<"), s["ec"].der


def _other_key(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    return xml(signed(s["ec2"])), s["ec"].der  # ved2 signed, ved1's certificate authenticated


def _no_signature(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    return xml(envelope()), s["ec"].der


def _no_header(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    return (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body Id="b"><x/></s:Body></s:Envelope>'.encode(),
            s["ec"].der)


def _in_body(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    root = signed(s["ec"])
    sig = _header(root).find(f"{{{DS}}}Signature")
    assert sig is not None
    _body(root).append(sig)  # moved: the Body's digest changes too, but the place alone refuses it
    return xml(root), s["ec"].der


def _in_other_header_element(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    root = signed(s["ec"])
    sig = _header(root).find(f"{{{DS}}}Signature")
    assert sig is not None
    etree.SubElement(_header(root), "{urn:test}Wrapper").append(sig)
    return xml(root), s["ec"].der


def _duplicate_body(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    """Wrapping: the signed Body hidden in the Header, a forged Body (no id) in its place."""
    root = signed(s["ec"])
    original = _body(root)
    etree.SubElement(_header(root), "{urn:test}Wrapper").append(copy.deepcopy(original))
    forged = etree.fromstring(f'<s:Body xmlns:s="{SOAP11}" xmlns:t="urn:test"><t:Cancel/></s:Body>')
    root.replace(original, forged)
    return xml(root), s["ec"].der


def _moved_body_same_id(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    """Wrapping: the signed Body moved into a wrapper element (not named Body), a forged Body with
    the same id stays at the envelope: the id is no longer unique."""
    root = signed(s["ec"])
    original = _body(root)
    wrapper = etree.SubElement(_header(root), "{urn:test}Wrapper", Id="body-1")
    for child in original:
        wrapper.append(copy.deepcopy(child))
    for child in list(original):
        original.remove(child)
    etree.SubElement(original, "{urn:test}Cancel")
    return xml(root), s["ec"].der


def _reference_not_body(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    root = envelope()
    route = _header(root).find("{urn:test}Route")
    assert route is not None
    route.set("Id", "route")
    _header(root).append(signature(root, s["ec"], uri="#route"))
    return xml(root), s["ec"].der


def _two_signatures(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    root = signed(s["ec"])
    sig = _header(root).find(f"{{{DS}}}Signature")
    assert sig is not None
    _header(root).append(copy.deepcopy(sig))
    return xml(root), s["ec"].der


def _body_without_id(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    root = signed(s["ec"])
    del _body(root).attrib["Id"]
    return xml(root), s["ec"].der


def _doctype(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    return b'<!DOCTYPE x [<!ENTITY e "e">]>' + xml(signed(s["ec"])), s["ec"].der


def _xxe(s: dict[str, Signer]) -> tuple[bytes, bytes]:
    body = xml(envelope(payload="<t:A>XXE</t:A>")).replace(b"XXE", b"&e;")
    return b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + body, s["ec"].der


CASES: list[tuple[str, Case, str, str]] = [  # id, message, status, why (a part of the detail)
    ("tampered-body", _tampered, "invalid", "Digest mismatch"),
    ("signed-by-another-key", _other_key, "invalid", "Signature verification failed"),
    ("no-signature", _no_signature, "absent", "no signature"),
    ("no-header", _no_header, "absent", "no signature"),
    ("signature-in-body", _in_body, "malformed", "exactly one element"),
    ("signature-in-other-header-element", _in_other_header_element, "invalid", "outside the SOAP Header"),
    ("wrapping-duplicate-body", _duplicate_body, "invalid", "exactly one SOAP Body, found 2"),
    ("wrapping-moved-body-same-id", _moved_body_same_id, "invalid", "carried by 2 elements"),
    ("reference-not-the-body", _reference_not_body, "invalid", "does not name the SOAP Body"),
    ("two-signatures", _two_signatures, "invalid", "2 signatures"),
    ("body-without-id", _body_without_id, "invalid", "no Id"),
    ("doctype", _doctype, "malformed", "DOCTYPE"),
    ("xxe", _xxe, "malformed", "DOCTYPE"),
    ("not-xml", lambda s: (b"{\"json\": true}", s["ec"].der), "malformed", "not well-formed"),
    ("not-soap", lambda s: (b"<a><b/></a>", s["ec"].der), "malformed", "not a SOAP envelope"),
    ("empty", lambda s: (b"", s["ec"].der), "malformed", "empty body"),
]


@pytest.mark.parametrize(("kind", "soap", "wsse"), [
    ("rsa", SOAP11, False), ("ec", SOAP11, False), ("ec", SOAP12, False), ("rsa", SOAP11, True)],
    ids=["valid-rsa", "valid-ecdsa", "valid-soap12", "valid-wsse-security"])
def test_valid(signers: dict[str, Signer], kind: str, soap: str, wsse: bool) -> None:
    result = check_soap_signature(xml(signed(signers[kind], soap, wsse)), signers[kind].der)
    assert result.status == "valid", result.detail
    assert result.reason is None


@pytest.mark.parametrize(("name", "case", "status", "why"), CASES, ids=[c[0] for c in CASES])
def test_refused(signers: dict[str, Signer], name: str, case: Case, status: str, why: str) -> None:
    body, der = case(signers)
    if status == "malformed":  # refused by the message layer before any signature is looked at
        with pytest.raises(MessageError, match=why):
            check_soap_signature(body, der)
        return
    result = check_soap_signature(body, der)
    assert (result.status, result.reason) == (status, f"signature-{status}"), result.detail
    assert why in result.detail


def test_the_tampered_case_would_be_valid_untouched(signers: dict[str, Signer]) -> None:
    """The refusals above are for the change, not for a broken signer: the same message verifies."""
    assert check_soap_signature(xml(signed(signers["ec"])), signers["ec"].der).status == "valid"


def test_algorithm_list_is_pluggable(signers: dict[str, Signer]) -> None:
    ecdsa_only = Algorithms(signature_methods=frozenset({"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"}),
                            digest_methods=DEFAULT.digest_methods)
    body = xml(signed(signers["rsa"]))
    result = check_soap_signature(body, signers["rsa"].der, ecdsa_only)
    assert result.status == "unsupported" and "rsa-sha256" in result.detail
    assert check_soap_signature(xml(signed(signers["ec"])), signers["ec"].der, ecdsa_only).status == "valid"


def test_algorithms_signxml_cannot_do_are_refused_at_configuration() -> None:
    with pytest.raises(ValueError):
        Algorithms(signature_methods=frozenset({"urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-"
                                                "gostr34112012-256"}), digest_methods=frozenset())


REAL_CASES = [
    (SMEV2 / "putData/request.xml", "unsupported"),  # Header/wsse:Security, GOST R 34.10-2001
    (SMEV2 / "updateStatus/UpdateStatus_request.xml", "unsupported"),
    (SMEV3 / "GetResponseResponse_ValidResponse.xml", "absent"),  # GOST signatures of payload elements
    (SMEV3 / "SendRequestResponce.xml", "absent"),
    (SMEV3 / "GetResponseResponce_MultipartEmptyQueue.xml", "malformed"),  # MIME multipart, not XML
    (XROAD / "signature.xml", "malformed"),  # XAdES RSA-SHA512, not a SOAP envelope
]


@pytest.mark.parametrize(("path", "status"), REAL_CASES,
                         ids=["smev2-putdata-gost", "smev2-updatestatus-gost", "smev3-payload-signatures",
                              "smev3-send-response", "smev3-multipart", "xroad-xades-rsa-sha512"])
def test_real_messages(signers: dict[str, Signer], path: Path, status: str) -> None:
    if status == "malformed":
        with pytest.raises(MessageError):
            check_soap_signature(path.read_bytes(), signers["ec"].der)
        return
    result: SignatureResult = check_soap_signature(path.read_bytes(), signers["ec"].der)
    assert result.status == status, result.detail
    if status == "unsupported":
        assert "GOST" in result.detail


def test_xroad_sample_uses_an_accepted_method() -> None:
    """The X-Road sample (refused above as not SOAP) is RSA-SHA512, a method of the default list:
    its refusal is about the envelope, not the algorithm."""
    root = etree.fromstring((XROAD / "signature.xml").read_bytes())
    method = root.find(f".//{{{DS}}}SignatureMethod")
    assert method is not None and method.get("Algorithm") in DEFAULT.signature_methods


def test_requires_signature_only_for_signed_soap_services(pki: Pki) -> None:
    bundle = signed_bundle(pki)
    bundle["services"]["SID0003002"]["signed_messages"] = True
    bundle["services"]["SID0003001"]["signed_messages"] = True  # REST: a SOAP signature does not apply
    policy = parse_policy(bundle)
    assert requires_signature(policy, "SID0003002")
    assert not requires_signature(policy, "SID0003001")
    assert not requires_signature(policy, "SID9999999") and not requires_signature(policy, None)
    assert not requires_signature(parse_policy(signed_bundle(pki)), "SID0003002")


# --- through the sidecar ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_sidecar(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: Keys,
                   upstream: Upstream) -> Iterator[Running]:
    d = tmp_path_factory.mktemp("signed")
    bundle = signed_bundle(pki)
    bundle["services"]["SID0003002"]["signed_messages"] = True
    with run_sidecar(d, pki, keys, upstream, bundle, limits={"max_body_bytes": 65536}) as running:
        yield running


def _exchange(sidecar: Running, response: httpx.Response) -> list[dict[str, Any]]:
    by_id = {rec["id"]: rec for rec in records(sidecar)}
    exchange = by_id[int(response.headers["Reestr-Journal-Id"])]["exchange"]
    return sorted((rec for rec in by_id.values() if rec["exchange"] == exchange), key=lambda r: r["id"])


def test_sidecar_allows_signed_and_denies_unsigned(signed_sidecar: Running, signers: dict[str, Signer]) -> None:
    headers = {"Content-Type": "text/xml", "SOAPAction": '"urn:getStatus"'}
    before = len(signed_sidecar.upstream.calls)
    ok = signed_sidecar.call("ved1", "POST", "/SID0003002", headers=headers, content=xml(signed(signers["ec"])))
    assert len(signed_sidecar.upstream.calls) == before + 1
    assert signed_sidecar.upstream.calls[-1]["headers"]["Reestr-Operation"] == "op1"
    # this upstream answers JSON: an answer of a signed SOAP service that cannot be signed never
    # leaves unsigned (proxy.addons.response_signing)
    assert ok.status_code == 500 and b"signing-failed" in ok.content
    request, response = _exchange(signed_sidecar, ok)
    assert (request["kind"], request["decision"]) == ("request", "allow")
    ecdsa = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    assert request["signature_check"] == f"valid {ecdsa} {hashlib.sha256(signers['ec'].der).hexdigest()}"
    assert (response["kind"], response["status"], response["signature_check"]) == ("response", 500, None)

    denied = signed_sidecar.call("ved1", "POST", "/SID0003002", headers=headers, content=xml(envelope()))
    assert denied.status_code == 403 and denied.headers["content-type"].startswith("text/xml")
    fault = etree.fromstring(denied.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None and fault.findtext("detail/{urn:reestr}code") == "signature-absent"
    assert len(signed_sidecar.upstream.calls) == before + 1  # the upstream was never called
    request, response = _exchange(signed_sidecar, denied)
    assert (request["decision"], request["reason"], request["signature_check"]) == (
        "deny", "signature-absent", "absent")
    assert (response["reason"], response["status"]) == ("signature-absent", 403)

    # ved2 signs, ved1's certificate calls: authorship is the TLS certificate's
    forged = signed_sidecar.call("ved1", "POST", "/SID0003002", headers=headers,
                                 content=xml(signed(signers["ec2"])))
    assert forged.status_code == 403 and b"signature-invalid" in forged.content
    assert len(signed_sidecar.upstream.calls) == before + 1

    # the REST service of the same bundle is not signed: no check, null in the journal
    rest = signed_sidecar.call("ved1", "GET", "/SID0003001/certificates/7")
    assert rest.status_code == 200
    assert [rec["signature_check"] for rec in _exchange(signed_sidecar, rest)] == [None, None]
