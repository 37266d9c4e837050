"""`reestr audit`: from one journal record to the people who approved the rule that decided it.

The chain (docs/operations.md, "Audit"):

1. the journal record: time, direction, caller, service, operation, decision and reason, the
   grant's location and the bundle serial it was decided under;
2. the bundle of that serial from the archive (compiler.bundle_archive): its digest and
   signatures, its source commit and registry digest;
3. the grant at that commit (`git show <commit>:registry/consumers/<id>.yaml`): legal basis and
   purpose, at the file and line the record names;
4. the audit record of the serial: the pull request that merged the commit, its approvals, and
   who triggered the signing.

And the reverse, `--grant CONSUMER SID`: who used that grant, how often, over a period.
Journals are read through proxy.journal (read-only); this module prints nothing itself.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from compiler import bundle_archive
from compiler.errors import CompilerError
from compiler.yamlsrc import load_bytes

_GRANT = re.compile(r"(registry/consumers/[a-z][a-z0-9-]{1,62}\.ya?ml):([0-9]{1,7})\Z")


class AuditError(CompilerError):
    """The record cannot be found, or a link of the chain is missing."""

    code = "AUDIT-chain-broken"


def find_record(journal: Path, record_id: int) -> dict[str, Any]:
    from proxy.errors import SidecarError
    from proxy.journal.query import export

    try:
        for record in export(journal):
            if record.get("id") == record_id:
                return record
    except SidecarError as e:
        raise AuditError(f"{journal}: {e}") from e
    raise AuditError(f"{journal}: no record {record_id}")


def chain(record: dict[str, Any], archive: Path, repo: Path | None) -> list[str]:
    """The lines of the whole chain for one journal record."""
    lines = [f"record {record.get('id')}: {record.get('time')} {record.get('direction')} "
             f"{record.get('kind')} {record.get('consumer') or '-'} → {record.get('provider') or '-'} "
             f"{record.get('sid') or '-'} {record.get('operation') or '-'}: {record.get('decision')}"
             + (f" ({record['reason']})" if record.get("reason") else "")]
    serial = record.get("bundle_serial")
    if not isinstance(serial, int):
        return [*lines, "  no bundle serial: the call was decided without a bundle in force"]
    audit, _ = bundle_archive.read(archive, serial)
    audience = record.get("provider") if record.get("direction") == "inbound" else record.get("consumer")
    entry = audit.get("bundles", {}).get(f"{audience}.json")
    lines.append(f"  bundle serial {serial} for {audience}: "
                 + (f"sha256 {entry['sha256']}, signed by "
                    + ", ".join(f"keyid {s['keyid'][:16]}… sig {s['sig'][:16]}…" for s in entry["signatures"])
                    if entry else "not in the archive"))
    lines.append(f"    issued {audit.get('issued_at')}, expires {audit.get('expires_at')}")
    commit = audit.get("commit")
    lines.append(f"  source: commit {commit or '(none recorded)'}, registry {audit.get('registry_digest')}")
    lines += _grant(record.get("grant"), commit, repo)
    lines += _approvals(audit)
    return lines


def _grant(where: Any, commit: str | None, repo: Path | None) -> list[str]:
    if not isinstance(where, str) or not where:
        return ["  grant: none (denied, or the owner's own right)"]
    if where == "implicit:owner":
        return ["  grant: the owner's implicit right to its own service (R2)"]
    m = _GRANT.match(where)
    if m is None:
        return [f"  grant: {where} (not a registry location: a journal of record format 1?)"]
    path, line = m.group(1), int(m.group(2))
    out = [f"  grant: {where} at commit {commit[:12] if commit else '?'}"]
    if repo is None or commit is None:
        return [*out, "    (no repository or commit: the grant's text is not shown)"]
    from compiler.revisions import read_file

    raw = read_file(repo, commit, path)
    if raw is None:
        return [*out, f"    {path} is not in {repo} at {commit[:12]}"]
    loaded = load_bytes(raw)
    grants = (((loaded.data or {}).get("spec") or {}).get("grants") or []) if isinstance(loaded.data, dict) else []
    for i, grant in enumerate(grants):
        if loaded.positions.of(("spec", "grants", i))[0] == line and isinstance(grant, dict):
            return [*out, f"    legal basis: {grant.get('legal_basis')}", f"    purpose: {grant.get('purpose')}",
                    f"    access: {grant.get('access')}"
                    + (f" {', '.join(grant.get('operations') or [])}" if grant.get("operations") else "")]
    return [*out, f"    no grant starts at line {line} of {path} at {commit[:12]}"]


def _approvals(audit: dict[str, Any]) -> list[str]:
    pr = audit.get("pull_request")
    out = [f"  pull request: #{pr}" if pr is not None else "  pull request: not recorded"]
    approvals = audit.get("approvals")
    if not isinstance(approvals, list):
        out.append("  approvals: not recorded")
    for a in approvals or []:
        reviews = "; ".join(f"{r.get('login')} {r.get('state')} {r.get('submitted_at')} on "
                            f"{str(r.get('commit_id'))[:12]}" for r in a.get("reviews", []))
        out.append(f"  approved for {a.get('participant')} {a.get('team')} ({', '.join(a.get('roles', []))}): "
                   + (reviews or "MISSING"))
    out.append(f"  signing triggered by: {audit.get('triggered_by') or 'not recorded'}")
    return out


def grant_usage(journal: Path, consumer: str, sid: str, since: str | None, until: str | None) -> list[str]:
    """Who used CONSUMER's grant of SID, how often, by operation and by bundle serial."""
    from proxy.errors import SidecarError
    from proxy.journal.query import export

    calls: Counter[str] = Counter()
    serials: Counter[int] = Counter()
    denied = 0
    first = last = None
    try:
        for r in export(journal, since=since, until=until):
            if r.get("kind") != "request" or r.get("consumer") != consumer or r.get("sid") != sid:
                continue
            if r.get("decision") != "allow":
                denied += 1
                continue
            calls[str(r.get("operation"))] += 1
            serials[r.get("bundle_serial") or 0] += 1
            first = first or r.get("time")
            last = r.get("time")
    except SidecarError as e:
        raise AuditError(f"{journal}: {e}") from e
    period = f"{since or 'the start'} – {until or 'now'}"
    lines = [f"{consumer} → {sid} in {journal} ({period}): {sum(calls.values())} allowed call(s), "
             f"{denied} denied"]
    if calls:
        lines.append(f"  first {first}, last {last}")
        lines += [f"  {op}: {n}" for op, n in sorted(calls.items())]
        lines.append("  under bundle serial(s): " + ", ".join(f"{s} ({n})" for s, n in sorted(serials.items())))
    return lines
