"""Generate a synthetic, valid registry of a given size (issue 2 item 8).

    .venv/bin/python bench/gen_registry.py --out bench/out/registry-default/registry

Default size: 10,000 services, 2,000 participants, 200,000 grants spread over the participants'
access sheets. The documents copy the shapes of the example `registry/` exactly (the
`$schema` comment line, apiVersion/kind/metadata/spec, Russian names and legal bases). The mix:
REST and SOAP services with 1–6 operations, public / restricted / personal-data; grants `full` or
`operations`, full access to personal data always with a `justification` (R5), some grants with a
future `valid_until`; one operator with no sheet (R2). Popular services and big consumers are
skewed, as in life, so the largest bundle is much larger than the median one.

With `--payload-schemas`, every SOAP service also registers a request XSD per operation set
(`schemas/services/<SID>/request.xsd`, beside the registry folder) that imports a types file
(`common/types.xsd`), as real вид сведений schemas do; `reestr validate` then compiles each one.
Without it the output is byte for byte what it was before the flag existed.

Deterministic: the same sizes and `--seed` give the same bytes (certificates come from a cache
under bench/out/, generated once with demo/pki.py; each participant has its own, since a shared
certificate is UNIQ-certificate). The result validates clean: tests/bench/test_gen_registry.py
runs `reestr validate` on a small one.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
CERT_CACHE = ROOT / "bench" / "out" / "certs.pem"
MAX_GRANTS_PER_SHEET = 1500  # keeps every sheet well under the loader's 1 MiB limit

_TYPES = ["federal", "regional", "regional", "municipal", "municipal", "fund", "mfc", "organization"]
_LAWS = [
    "Федеральный закон от 27.07.2010 № 210-ФЗ «Об организации предоставления государственных и "
    "муниципальных услуг», ст. 7.1",
    "Федеральный закон от 27.07.2006 № 152-ФЗ «О персональных данных», ст. 6",
    "Федеральный закон от 10.12.1995 № 196-ФЗ «О безопасности дорожного движения», ст. 25, 26",
    "Постановление Правительства РФ от 08.09.2010 № 697 «О единой системе межведомственного "
    "электронного взаимодействия»",
    "Федеральный закон от 29.11.2010 № 326-ФЗ «Об обязательном медицинском страховании», ст. 44",
]
_SUBJECTS = ["заявителе", "транспортном средстве", "объекте недвижимости", "медицинской справке",
             "регистрации по месту жительства", "пенсии", "налоговой задолженности", "лицензии"]
_CLASSES = ["public"] * 3 + ["restricted"] * 3 + ["personal-data"] * 4
_SCHEMA = "# yaml-language-server: $schema=../../schemas/{}.schema.json\n"


def q(text: str) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def certificates(count: int) -> list[str]:
    """`count` distinct PEM client certificates, cached under bench/out/ (EC P-256, demo CA)."""
    cached: list[str] = []
    if CERT_CACHE.is_file():
        marker = "-----END CERTIFICATE-----\n"
        cached = [c + marker for c in CERT_CACHE.read_text().split(marker) if c.strip()]
    if len(cached) < count:
        sys.path.insert(0, str(ROOT))
        from demo.pki import issue, make_ca

        ca = make_ca("reestr bench CA")
        for i in range(len(cached), count):
            cert, _ = issue(ca, f"bench-{i:05d}")
            cached.append(cert.public_bytes(serialization.Encoding.PEM).decode())
        CERT_CACHE.parent.mkdir(parents=True, exist_ok=True)
        CERT_CACHE.write_text("".join(cached))
    return cached[:count]


def participant(pid: str, n: int, kind: str, pem: str) -> str:
    cert = "".join(f"        {line}\n" for line in pem.strip().splitlines())
    return (_SCHEMA.format("participant") + "apiVersion: reestr/v1\nkind: Participant\n"
            f"metadata:\n  id: {pid}\nspec:\n"
            f"  name: {q(f'Ведомство {n} (синтетическое)')}\n  type: {kind}\n"
            "  contacts:\n"
            f"    - name: Ответственный за взаимодействие {n}\n"
            "      role: Начальник отдела информатизации\n"
            f"      email: it@{pid}.example.gov.ru\n"
            f"      phone: \"+7 495 {n // 10000:03d}-{n % 10000 // 100:02d}-{n % 100:02d}\"\n"
            f"  review_team: \"@reestr-registry/{pid}\"\n"
            "  certificates:\n    - note: основной сертификат информационной системы\n"
            f"      pem: |\n{cert}"
            f"  sidecar: https://{pid}.example.gov.ru:8443\n"
            f"  agreement:\n    number: \"РСМЭВ-2025/{n:04d}\"\n    signed: \"2025-{n % 12 + 1:02d}-15\"\n"
            "    notice_days: 90\n")


_TYPES_XSD = """<?xml version="1.0" encoding="utf-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:{sid}:types"
           elementFormDefault="qualified">
  <xs:simpleType name="IdType"><xs:restriction base="xs:string"><xs:maxLength value="36"/>
    <xs:pattern value="[0-9a-f-]+"/></xs:restriction></xs:simpleType>
  <xs:complexType name="QueryType"><xs:sequence>
    <xs:element name="Id" type="t:IdType" xmlns:t="urn:{sid}:types"/>
    <xs:element name="Date" type="xs:date" minOccurs="0"/>
  </xs:sequence></xs:complexType>
</xs:schema>
"""


def payload_xsd(sid: str, ops: list[str]) -> str:
    """A request XSD declaring each operation's body element, importing common/types.xsd."""
    ns = f"urn:{sid.lower()}"
    elements = "".join(f'  <xs:element name="{op.capitalize()}Request" type="t:QueryType"/>\n' for op in ops)
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:{sid.lower()}:types"\n'
            f'           targetNamespace="{ns}" elementFormDefault="qualified">\n'
            f'  <xs:import namespace="urn:{sid.lower()}:types" schemaLocation="common/types.xsd"/>\n'
            f"{elements}</xs:schema>\n")


def service(rng: random.Random, sid: str, n: int, owner: str,
            payload_schemas: bool = False) -> tuple[str, list[str], str]:
    """(YAML, operation names, classification) of one service."""
    soap = rng.random() < 0.25
    classification = rng.choice(_CLASSES)
    subject = rng.choice(_SUBJECTS)
    ops = [f"operation{k + 1}" for k in range(rng.choice([1, 2, 2, 3, 3, 3, 4, 5, 6]))]
    lines = [_SCHEMA.format("service"), "apiVersion: reestr/v1\nkind: Service\n",
             f"metadata:\n  sid: {sid}\nspec:\n",
             f"  name: {q(f'Сведения о {subject} № {n}')}\n  owner: {owner}\n",
             "  description: >-\n    Сведения о " + subject + " из информационной системы владельца\n"
             "    (синтетический сервис для замера производительности).\n",
             f"  protocol: {'soap' if soap else 'rest'}\n  classification: {classification}\n",
             f"  signed_messages: {'true' if soap or rng.random() < 0.2 else 'false'}\n",
             f"  legal_basis: >-\n    {rng.choice(_LAWS)}\n",
             "  contacts:\n    - name: Владелец сервиса\n      role: Отдел информатизации\n",
             f"      email: smev@{owner}.example.gov.ru\n",
             "  operations:\n"]
    for k, op in enumerate(ops):
        lines.append(f"    - name: {op}\n      description: {q(f'Операция {k + 1} сервиса {sid}')}\n")
        if soap:
            lines.append(f"      soap_action: urn:{sid.lower()}:{op}\n"
                         f"      body_element: \"{{urn:{sid.lower()}}}{op.capitalize()}Request\"\n")
            if payload_schemas:
                lines.append(f"      request_schema: schemas/services/{sid}/request.xsd\n")
        else:
            method, path = [("GET", f"/items/{k}/{{id}}"), ("POST", f"/items/{k}/search"),
                            ("GET", f"/requests/{k}/{{id}}/status")][k % 3]
            lines.append(f"      method: {method}\n      path: {path}\n")
    return "".join(lines), ops, classification


def grant(rng: random.Random, sid: str, ops: list[str], classification: str) -> str:
    full = len(ops) == 1 or rng.random() < 0.4
    out = [f"    - service: {sid}\n      access: {'full' if full else 'operations'}\n"]
    if not full:
        chosen = sorted(rng.sample(ops, rng.randint(1, len(ops) - 1)))
        out.append("      operations:\n" + "".join(f"        - {op}\n" for op in chosen))
    out.append(f"      legal_basis: >-\n        {rng.choice(_LAWS)}\n")
    out.append(f"      purpose: Получение сведений для предоставления государственной услуги ({sid})\n")
    if full and classification == "personal-data":  # R5: full access to personal data is justified
        out.append("      justification: Регламент услуги требует все операции сервиса\n")
    if rng.random() < 0.15:
        out.append(f"      valid_until: \"{rng.randint(2027, 2031)}-{rng.randint(1, 12):02d}-28\"\n")
    return "".join(out)


def generate(out: Path, services: int, participants: int, grants: int, seed: int = 1,
             payload_schemas: bool = False) -> dict[str, int]:
    """Write participants/, services/, consumers/ under `out` (replaced); return the counts.
    With `payload_schemas`, SOAP services' XSDs go to `out.parent/schemas/services/<SID>/`."""
    if participants < 2 or services < 1:
        raise ValueError("need at least 2 participants and 1 service")
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    for folder in ("participants", "services", "consumers"):
        (out / folder).mkdir(parents=True)
    pids = [f"agency-{i:05d}" for i in range(participants)]
    operator = pids[0]  # the operator's rights are implicit: it owns services but has no sheet (R2)
    for i, (pid, pem) in enumerate(zip(pids, certificates(participants), strict=True)):
        kind = "operator" if pid == operator else rng.choice(_TYPES)
        (out / "participants" / f"{pid}.yaml").write_text(participant(pid, i, kind, pem), encoding="utf-8")

    if payload_schemas:  # a schemas/ folder beside the registry is checked by validate: keep it current
        from compiler.schemas import write_all

        write_all(out.parent / "schemas")
    catalogue: list[tuple[str, str, list[str], str]] = []
    for i in range(services):
        sid = f"SID{1_000_000 + i:07d}"
        owner = rng.choice(pids)
        text, ops, classification = service(rng, sid, i, owner, payload_schemas)
        (out / "services" / f"{sid}.yaml").write_text(text, encoding="utf-8")
        if payload_schemas and "request_schema:" in text:
            folder = out.parent / "schemas" / "services" / sid
            if folder.exists():
                shutil.rmtree(folder)
            (folder / "common").mkdir(parents=True)
            (folder / "request.xsd").write_text(payload_xsd(sid, ops), encoding="utf-8")
            (folder / "common" / "types.xsd").write_text(_TYPES_XSD.format(sid=sid.lower()), encoding="utf-8")
        catalogue.append((sid, owner, ops, classification))

    consumers = pids[1:]
    # Skewed sheet sizes (a few big consumers, many small ones) and service popularity.
    weights = [rng.paretovariate(1.5) for _ in consumers]
    total = sum(weights)
    owned = {pid: 0 for pid in pids}
    for _, owner, _, _ in catalogue:
        owned[owner] += 1
    caps = [min(MAX_GRANTS_PER_SHEET, services - owned[pid]) for pid in consumers]
    sizes = [min(cap, int(grants * w / total)) for cap, w in zip(caps, weights, strict=True)]
    shortfall = grants - sum(sizes)
    order = sorted(range(len(consumers)), key=lambda k: sizes[k])
    while shortfall > 0 and any(s < c for s, c in zip(sizes, caps, strict=True)):
        for k in order:
            if shortfall == 0:
                break
            if sizes[k] < caps[k]:
                sizes[k] += 1
                shortfall -= 1
    popularity = [rng.paretovariate(2.0) for _ in catalogue]
    written = 0
    for pid, size in zip(consumers, sizes, strict=True):
        picked: set[int] = set()
        rows: list[str] = []
        while len(picked) < size:
            for k in rng.choices(range(len(catalogue)), weights=popularity, k=size - len(picked)):
                sid, owner, ops, classification = catalogue[k]
                if k in picked or owner == pid or len(picked) >= size:
                    continue  # one row per service (R1); the owner's rights are implicit (R2)
                picked.add(k)
                rows.append(grant(rng, sid, ops, classification))
        written += len(rows)
        text = (_SCHEMA.format("access-sheet") + f"# Технологический лист участника {pid}.\n"
                "apiVersion: reestr/v1\nkind: AccessSheet\n"
                f"metadata:\n  consumer: {pid}\nspec:\n  grants:"
                + ("\n" + "".join(rows) if rows else " []\n"))
        (out / "consumers" / f"{pid}.yaml").write_text(text, encoding="utf-8")
    return {"participants": participants, "services": services, "grants": written}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "registry",
                        help="registry folder to (re)create (default: bench/out/registry)")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--participants", type=int, default=2_000)
    parser.add_argument("--grants", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--payload-schemas", action="store_true",
                        help="SOAP services register a request XSD with an import (beside the registry)")
    args = parser.parse_args(argv)
    counts = generate(args.out, args.services, args.participants, args.grants, args.seed, args.payload_schemas)
    print(f"wrote {args.out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
