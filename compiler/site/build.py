"""Build the catalog: `index.html`, one page per service and per participant, and the assets.

Every registry string goes through `_e` (html.escape, quotes included) before it reaches a page,
and the search data is JSON with `<`, `>` and `&` escaped so no text can close its script tag.
Links are relative (`services/X.html`, `../participants/y.html`) and only point at pages that
are written, so the site works from the file system and from any static host.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from string import Template

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from compiler.access import IMPLICIT_OWNER, Right, effective_rights, rights_of
from compiler.models import Access, Contact, Operation, Participant, Service
from compiler.registry import Registry

ASSETS = ("style.css", "catalog.js")
_CLASSIFICATION = {"public": "открытые сведения", "restricted": "ограниченного доступа",
                   "personal-data": "персональные данные", "state-secret": "гостайна — не обрабатывается"}
_TYPE = {"operator": "оператор", "federal": "федеральный орган", "regional": "региональный орган",
         "municipal": "орган местного самоуправления", "fund": "государственный фонд", "mfc": "МФЦ",
         "organization": "организация"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class _Row:
    """One right as the catalog shows it: the right, its sheet row, and whether it is in force."""

    right: Right
    purpose: str
    status: str | None               # None when in force today, else why not


def build_site(registry: Registry, out: str | Path, today: date, commit: str | None = None) -> list[Path]:
    """Write the catalog of `registry` (as in force on `today`) into `out`; return the files.
    `commit`: the git commit it was built from, shown on every page beside the registry digest."""
    root = Path(out)
    for folder in ("services", "participants", "assets"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for stale in (root / folder).glob("*.html"):
            stale.unlink()  # pages of services or participants that left the registry
    rows = _rows(registry, today)
    page = Template(resources.files("compiler.site").joinpath("assets/page.html").read_text("utf-8"))
    source = f"состояние на {today.isoformat()} · {registry.digest[:19]}"
    if commit:
        source += f" · коммит {commit[:12]}"
    written: list[Path] = []

    def write(path: Path, title: str, body: str, root_prefix: str, scripts: str = "") -> None:
        path.write_text(page.substitute(title=_e(title), body=body, root=root_prefix, scripts=scripts,
                                        source=_e(source)), encoding="utf-8")
        written.append(path)

    write(root / "index.html", "Каталог", _index(registry), "",
          f'<script type="application/json" id="catalog-data">{_search_data(registry)}</script>\n'
          '<script src="assets/catalog.js"></script>')
    for sid, service in sorted(registry.services.items()):
        write(root / "services" / f"{sid}.html", f"{sid} {service.spec.name}",
              _service(registry, service, [r for r in rows if r.right.sid == sid]), "../")
    for pid, participant in sorted(registry.participants.items()):
        write(root / "participants" / f"{pid}.html", participant.spec.name,
              _participant(registry, participant, rows), "../")
    for name in ASSETS:
        target = root / "assets" / name
        with resources.as_file(resources.files("compiler.site").joinpath("assets", name)) as src:
            shutil.copyfile(src, target)
        written.append(target)
    return written


def _rows(registry: Registry, today: date) -> list[_Row]:
    kept, excluded = effective_rights(registry, today)
    in_force = set(kept)
    reasons = {e.what: _why_not(e.reason, registry, e.what) for e in excluded}
    rows = []
    for consumer in sorted(registry.participants):
        sheet = registry.sheets.get(consumer)
        for right in rights_of(registry, consumer):
            purpose = ("право владельца сервиса (R2)" if right.index is None or sheet is None
                       else sheet.spec.grants[right.index].purpose)
            status = None if right in in_force else reasons.get(f"grant {consumer} → {right.sid}",
                                                                  "не действует")
            rows.append(_Row(right, purpose, status))
    return sorted(rows, key=lambda r: (r.right.where != IMPLICIT_OWNER, r.right.consumer, r.right.sid))


_NOT_IN_FORCE = {
    "grant-expired": "срок действия истёк", "unknown-service": "сервис не зарегистрирован",
    "unknown-participant": "участник не зарегистрирован", "state-secret": "государственная тайна (R6)",
}


def _why_not(code: str, registry: Registry, what: str) -> str:
    """Why a right is not in force, in Russian, without a suspension's internal reason (only
    "since"): the catalog is public, the reason is the operator's record (R9)."""
    role, _, state = code.partition("-")
    if state in ("suspended", "terminated") and role in ("consumer", "owner"):
        consumer, _, sid = what.removeprefix("grant ").partition(" → ")
        service = registry.services.get(sid)
        pid = consumer if role == "consumer" else (service.spec.owner if service else "")
        who = "потребитель" if role == "consumer" else "владелец"
        participant = registry.participants.get(pid)
        if participant is None:
            return f"{who} не действует"
        spec = participant.spec
        if state == "suspended":
            since = f" с {spec.suspension.since.isoformat()}" if spec.suspension else ""
            return f"{who} приостановлен{since}"
        end = spec.agreement.termination.end.isoformat() if spec.agreement.termination else ""
        return f"{who}: соглашение прекращено с {end}"
    return _NOT_IN_FORCE.get(code, "не действует")


# --- pages --------------------------------------------------------------------------------------


def _index(registry: Registry) -> str:
    services = "".join(
        f'<tr data-sid="{_e(sid)}"><td><a class="mono" href="services/{_e(sid)}.html">{_e(sid)}</a></td>'
        f"<td>{_e(s.spec.name)}</td><td>{_participant_link(registry, s.spec.owner, '')}</td>"
        f"<td>{_badge(s.spec.classification)}</td><td>{_e(s.spec.protocol.upper())}</td>"
        f'<td class="num">{len(s.spec.operations)}</td></tr>\n'
        for sid, s in sorted(registry.services.items()))
    participants = "".join(
        f'<tr data-participant="{_e(pid)}"><td><a class="mono" href="participants/{_e(pid)}.html">'
        f"{_e(pid)}</a></td><td>{_e(p.spec.name)}</td><td>{_e(_TYPE.get(p.spec.type, p.spec.type))}</td>"
        f"<td>{_status(p)}</td></tr>\n"
        for pid, p in sorted(registry.participants.items()))
    return f"""<h1>Каталог электронных сервисов</h1>
<p class="lead">Сервисы, их владельцы, операции и права доступа по технологическим листам.</p>
<div class="search"><label for="search">Поиск</label>
<input id="search" type="search" autocomplete="off"
 placeholder="SID, название, операция, правовое основание, цель, участник">
<span class="count" id="search-count" aria-live="polite"></span></div>
<h2>Сервисы (<span id="services-count">{len(registry.services)}</span>)</h2>
<table id="services"><thead><tr><th>SID</th><th>Название</th><th>Владелец</th><th>Сведения</th>
<th>Протокол</th><th>Операций</th></tr></thead>
<tbody>
{services}</tbody></table>
<p class="empty" id="no-services" hidden>Сервисов не найдено.</p>
<h2>Участники (<span id="participants-count">{len(registry.participants)}</span>)</h2>
<table id="participants"><thead><tr><th>ID</th><th>Наименование</th><th>Тип</th><th>Статус</th></tr></thead>
<tbody>
{participants}</tbody></table>
<p class="empty" id="no-participants" hidden>Участников не найдено.</p>"""


def _search_data(registry: Registry) -> str:
    def owner_name(pid: str) -> str:
        owner = registry.participants.get(pid)
        return owner.spec.name if owner else ""
    grants: dict[str, list[str]] = {}
    for sheet in registry.sheets.values():
        for g in sheet.spec.grants:
            grants.setdefault(g.service, []).extend(x for x in (g.legal_basis, g.purpose) if x)

    def searched(sid: str, s: Service) -> str:
        ops = [part for op in s.spec.operations for part in (op.name, op.description or "")]
        return " ".join((sid, s.spec.name, s.spec.owner, owner_name(s.spec.owner), s.spec.legal_basis,
                         *ops, *grants.get(sid, [])))

    data = {
        "services": [{"sid": sid, "name": s.spec.name, "search": searched(sid, s)}
                     for sid, s in sorted(registry.services.items())],
        "participants": [{"id": pid, "name": p.spec.name, "search": f"{pid} {p.spec.name}"}
                         for pid, p in sorted(registry.participants.items())],
    }
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _service(registry: Registry, service: Service, rows: list[_Row]) -> str:
    spec = service.spec
    facts = [("Владелец", _participant_link(registry, spec.owner)),
             ("Протокол", _e(spec.protocol.upper())),
             ("Сведения", _badge(spec.classification)),
             ("Подпись сообщений", "обязательна" if spec.signed_messages else "не требуется"),
             ("Правовое основание", _e(spec.legal_basis))]
    if spec.planned_classification is not None:
        planned = spec.planned_classification
        facts.append(("Смена категории", f"{_badge(planned.to)} с {_e(planned.effective)} "
                                         f"(объявлено {_e(planned.announced)}, R8)"))
    if spec.tariff is not None:
        facts.append(("Тариф", f"{_e(spec.tariff.per_call)} {_e(spec.tariff.currency)} за вызов (R13)"))
    facts.append(("Контакты", _contacts(spec.contacts)))
    operations = "".join(_operation_row(op) for op in spec.operations)
    access = "".join(
        f"<tr><td>{_participant_link(registry, r.right.consumer)}</td><td>{_access(r.right, service)}</td>"
        f"<td>{_e(r.right.legal_basis or '—') if r.right.where != IMPLICIT_OWNER else 'владелец'}</td>"
        f"<td>{_e(r.purpose)}</td><td>{_in_force(r)}</td></tr>\n" for r in rows)
    return f"""<h1><span class="mono">{_e(service.metadata.sid)}</span> {_e(spec.name)}</h1>
<p class="lead">{_e(spec.description)}</p>
{_facts(facts)}
<h2>Операции ({len(spec.operations)})</h2>
<table id="operations"><thead><tr><th>Операция</th><th>Описание</th><th>Адресация</th><th>Вывод из эксплуатации</th>
</tr></thead><tbody>
{operations}</tbody></table>
<h2>Кто имеет доступ</h2>
<table id="access"><thead><tr><th>Потребитель</th><th>Доступ</th><th>Правовое основание</th><th>Цель</th>
<th>Действует</th></tr></thead><tbody>
{access}</tbody></table>"""


def _participant(registry: Registry, participant: Participant, rows: list[_Row]) -> str:
    spec, pid = participant.spec, participant.metadata.id
    agreement = f"№ {_e(spec.agreement.number)} от {_e(spec.agreement.signed)}"
    if spec.agreement.termination is not None:
        agreement += f"; расторгается, доступ до {_e(spec.agreement.termination.end)} (R10)"
    facts = [("Тип", _e(_TYPE.get(spec.type, spec.type))), ("Статус", _status(participant)),
             ("Соглашение", agreement), ("Команда ревью", f"<code>{_e(spec.review_team)}</code>"),
             ("Адрес sidecar", f"<code>{_e(spec.sidecar)}</code>" if spec.sidecar else "—"),
             ("Сертификаты", _certificates(participant)), ("Контакты", _contacts(spec.contacts))]
    provides = "".join(
        f'<tr><td><a class="mono" href="../services/{_e(sid)}.html">{_e(sid)}</a></td><td>{_e(s.spec.name)}'
        f"</td><td>{_badge(s.spec.classification)}</td><td class=\"num\">{len(s.spec.operations)}</td></tr>\n"
        for sid, s in sorted(registry.services.items()) if s.spec.owner == pid)
    consumes = "".join(
        f"<tr><td>{_service_link(registry, r.right.sid)}</td><td>{_access(r.right, registry.services.get(r.right.sid))}"
        f"</td><td>{_e(r.right.legal_basis or '—')}</td><td>{_e(r.purpose)}</td><td>{_in_force(r)}</td></tr>\n"
        for r in rows if r.right.consumer == pid and r.right.where != IMPLICIT_OWNER)
    return f"""<h1>{_e(spec.name)}</h1>
<p class="lead mono">{_e(pid)}</p>
{_facts(facts)}
<h2>Предоставляет сервисы</h2>
{_table("provides", ["SID", "Название", "Сведения", "Операций"], provides, "Сервисов нет.")}
<h2>Получает доступ (технологический лист)</h2>
{_table("consumes", ["Сервис", "Доступ", "Правовое основание", "Цель", "Действует"], consumes,
        "Доступов нет.")}"""


# --- fragments ----------------------------------------------------------------------------------


def _table(ident: str, headers: Iterable[str], rows: str, empty: str) -> str:
    if not rows:
        return f'<p class="empty" id="{ident}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table id="{ident}"><thead><tr>{head}</tr></thead><tbody>\n{rows}</tbody></table>'


def _facts(facts: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>\n" for k, v in facts)
    return f'<dl class="facts">\n{items}</dl>'


def _participant_link(registry: Registry, pid: str, prefix: str = "../") -> str:
    participant = registry.participants.get(pid)
    if participant is None:
        return f'<span class="mono">{_e(pid)}</span> <span class="muted">(не зарегистрирован)</span>'
    return f'<a href="{prefix}participants/{_e(pid)}.html">{_e(participant.spec.name)}</a>'


def _service_link(registry: Registry, sid: str) -> str:
    service = registry.services.get(sid)
    if service is None:
        return f'<span class="mono">{_e(sid)}</span> <span class="muted">(не зарегистрирован)</span>'
    return f'<a class="mono" href="../services/{_e(sid)}.html">{_e(sid)}</a> {_e(service.spec.name)}'


def _badge(classification: str) -> str:
    value = str(classification)
    return f'<span class="badge {_e(value)}">{_e(_CLASSIFICATION.get(value, value))}</span>'


def _status(participant: Participant) -> str:
    spec = participant.spec
    if spec.suspension is not None or spec.status != "active":
        since = f" с {_e(spec.suspension.since)}" if spec.suspension else ""
        return f'<span class="badge off">приостановлен{since}</span> (R9)'
    if spec.agreement.termination is not None:
        return f'<span class="badge off">до {_e(spec.agreement.termination.end)}</span>'
    return "действует"


def _access(right: Right, service: Service | None) -> str:
    if right.where == IMPLICIT_OWNER:
        return "полный (владелец)"
    if right.access is Access.FULL:
        total = f" — все {len(service.spec.operations)}" if service else ""
        return f"полный{total}"
    ops = ", ".join(f"<code>{_e(op)}</code>" for op in sorted(right.operations or ()))
    return f"по операциям: {ops}"


def _in_force(row: _Row) -> str:
    until = f"до {_e(row.right.valid_until)}" if row.right.valid_until else "да"
    return until if row.status is None else f'<span class="badge off">нет</span> {_e(row.status)}'


def _operation_row(op: Operation) -> str:
    route = []
    if op.method or op.path:
        route.append(f"<code>{_e(op.method or '')} {_e(op.path or '')}</code>")
    if op.soap_action:
        route.append(f"SOAPAction <code>{_e(op.soap_action)}</code>")
    if op.body_element:
        route.append(f"<code>{_e(op.body_element)}</code>")
    if op.payload_element:
        route.append(f"вид сведений <code>{_e(op.payload_element)}</code>")
    sunset = (f"с {_e(op.deprecation.sunset)}" + (f", замена <code>{_e(op.deprecation.replacement)}</code>"
                                                  if op.deprecation.replacement else "")
              if op.deprecation else "—")
    return (f'<tr id="op-{_e(op.name)}"><td><code>{_e(op.name)}</code></td><td>{_e(op.description or "")}</td>'
            f"<td>{'<br>'.join(route)}</td><td>{sunset}</td></tr>\n")


def _contacts(contacts: list[Contact]) -> str:
    items = []
    for c in contacts:
        parts = [_e(c.name)] + ([f'<span class="muted">{_e(c.role)}</span>'] if c.role else [])
        if c.email:
            parts.append(f'<a href="mailto:{_e(c.email)}">{_e(c.email)}</a>')
        if c.phone:
            parts.append(_e(c.phone))
        items.append(", ".join(parts))
    return "<br>".join(items)


def _certificates(participant: Participant) -> str:
    """SHA-256 fingerprints: they name the participant on the wire (DESIGN §5.2)."""
    lines = []
    for cert in participant.spec.certificates:
        try:
            digest = x509.load_pem_x509_certificate(cert.pem.encode()).fingerprint(hashes.SHA256()).hex()
        except ValueError:
            digest = "не читается"
        note = f' <span class="muted">{_e(cert.note)}</span>' if cert.note else ""
        lines.append(f'<code title="SHA-256">{_e(digest[:16])}…</code>{note}')
    return "<br>".join(lines) or "—"
