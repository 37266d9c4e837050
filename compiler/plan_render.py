"""A Plan as text (terminal), markdown (the pull-request comment) or JSON (machines). Formatting only.

The JSON is the stable contract (documented in docs/review-flow.md): keys sorted, two-space indent,
`format` versioned. The markdown starts with a hidden marker so a workflow can find and update its
own comment instead of adding a new one on every push.
"""

from __future__ import annotations

import json

from compiler.plan import Change, Plan

FORMATS = ("text", "markdown", "json")
MARKER = "<!-- reestr-plan -->"

_TITLES = {
    "access-granted": "granted", "access-widened": "widened", "access-narrowed": "narrowed",
    "access-revoked": "revoked", "legal-basis-changed": "legal basis changed",
    "classification-changed": "classification changed",
    "classification-planned": "classification change announced",
    "service-added": "service added", "service-removed": "service removed",
    "service-owner-changed": "owner changed", "service-deprecated": "service deprecated",
    "operation-added": "operation added", "operation-removed": "operation removed",
    "operation-changed": "operation changed", "operation-deprecated": "operation deprecated",
    "participant-joined": "participant joined", "participant-suspended": "participant suspended",
    "participant-reinstated": "participant reinstated",
    "participant-terminated": "termination notice", "participant-removed": "participant removed",
    "certificate-added": "certificate added", "certificate-removed": "certificate removed",
    "grant-changed": "grant changed", "service-changed": "service changed",
    "participant-changed": "participant changed",
}


def render(plan: Plan, fmt: str, base: str = "base", head: str = "head",
           merge_base: str | None = None) -> str:
    """`plan` in `fmt`; `base` and `head` label the two sides (revisions or 'working tree');
    `merge_base`, when given, is the commit the plan actually compared with."""
    if fmt == "json":
        data = {"base": base, "head": head, "merge_base": merge_base, **plan.as_dict()}
        return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    label = f"{base} (merge base {merge_base[:12]})" if merge_base else base
    if fmt == "markdown":
        return _markdown(plan, label, head)
    return _text(plan, label, head)


def summary_line(plan: Plan) -> str:
    if not plan.changes:
        return "no changes to participants, services or access"
    counts = plan.counts()
    parts = [f"{counts[k]} {_TITLES[k]}" for k in _TITLES if k in counts]
    return f"{len(plan.changes)} change(s): " + ", ".join(parts)


def _subject(c: Change) -> str:
    field = f" {c.field}" if c.field else ""
    if c.consumer and c.sid:
        return f"{c.consumer} → {c.sid}{field}"
    if c.field:
        return f"{c.sid or c.participant}{field}"
    if c.sid:
        return c.sid + (f" {c.operation}" if c.operation else "")
    return c.participant or ""


def _values(c: Change) -> str:
    if c.before and c.after:
        return f"{c.before} → {c.after}"
    return c.after or c.before or ""


def _text(plan: Plan, base: str, head: str) -> str:
    lines = [f"error: {b}" for b in plan.blocked]
    lines += [f"reestr plan {base} → {head} (effective on {plan.today})", summary_line(plan), ""]
    for c in plan.changes:
        mark = "!" if c.widening or c.personal_data else " "
        ops = f" [{', '.join(c.operations)}]" if c.operations else ""
        lines.append(f"{mark} {_TITLES[c.kind]:<22} {_subject(c)}{ops}  {_values(c)}".rstrip())
        if c.detail:
            lines.append(f"    {c.detail}")
        if c.where:
            lines.append(f"    at {c.where}")
    if plan.approvers:
        lines += ["", "Required approvers:"]
        for a in plan.approvers:
            lines.append(f"  {a.participant} {a.review_team or '(no review team)'}: "
                         + ", ".join(a.roles))
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(plan: Plan, base: str, head: str) -> str:
    out = [MARKER, f"### reestr plan: `{base}` → `{head}`", ""]
    if plan.blocked:
        out += ["> [!CAUTION]", "> **This plan cannot judge the change yet:**"]
        out += [f"> - {_cell(b)}" for b in plan.blocked]
        out.append("")
    out += [f"**{summary_line(plan)}** (effective on {plan.today})", ""]
    widening = [c for c in plan.changes if c.widening]
    exposure = [c for c in plan.changes if c.personal_data]
    if widening:
        out += ["> [!WARNING]", "> **Access widening** — check the legal basis and the need (R4, R5):"]
        out += [f"> - {_TITLES[c.kind]}: `{_subject(c)}` {_ops(c)}" for c in widening]
        out.append("")
    if exposure:
        out += ["> [!CAUTION]", "> **Personal data exposure** (classification `personal-data`, R5):"]
        out += [f"> - {_TITLES[c.kind]}: `{_subject(c)}` {_ops(c)} {_cell(c.detail)}".rstrip()
                for c in exposure]
        out.append("")
    if plan.changes:
        out += ["| # | change | subject | operations | value | detail | where |",
                "|---|---|---|---|---|---|---|"]
        for i, c in enumerate(plan.changes):
            flag = " ⚠️" if c.widening or c.personal_data else ""
            out.append(f"| {i} | {_TITLES[c.kind]}{flag} | `{_subject(c)}` | {_ops(c)} | "
                       f"{_cell(_values(c))} | {_cell(c.detail)} | "
                       f"{'`' + c.where + '`' if c.where else ''} |")
        out.append("")
    out += ["#### Required approvers", ""]
    for a in plan.approvers:
        changes = ", ".join(str(i) for i in a.changes)
        out.append(f"- [ ] **{a.participant}** {a.review_team or '(no review team)'} — "
                   + ", ".join(a.roles) + (f" (changes {changes})" if changes else ""))
    out += [f"\n> warning: {w}" for w in plan.warnings]
    return "\n".join(out) + "\n"


def _ops(c: Change) -> str:
    return ", ".join(f"`{o}`" for o in c.operations)
