"""Whether every approver a plan requires has approved the pull request's head commit.

GitHub accepts an approval from *any one* code owner of a file, and CODEOWNERS cannot say "the
service owner AND the consumer AND the operator" (issue 11, finding 1). `reestr approvals` closes
the gap: it reads the plan (`reestr plan --format json`), the pull request's reviews as GitHub's
REST API returns them (`GET /repos/{owner}/{repo}/pulls/{n}/reviews`) and the members of each
review team (`GET /orgs/{org}/teams/{team}/members`, collected as `{"@org/team": [login, ...]}`),
and says for each required approver whether a member of its team approved the head commit.

The rules, as GitHub's own review state works:
- a user's state is their latest review by `submitted_at` that is APPROVED, CHANGES_REQUESTED or
  DISMISSED; COMMENTED and PENDING reviews do not change it (GitHub keeps an approval across a
  later comment);
- that state counts only when it is APPROVED *on the head commit* (`commit_id`): an approval given
  before a new push is stale, whatever the branch protection says about dismissing it;
- a plan that could not judge the change (`blocked`) cannot be approved.

Every input is checked before use: a shape this module does not expect is an ApprovalsError (a
usage error), never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from compiler.errors import CompilerError

SHA = re.compile(r"[0-9a-f]{40}\Z")
TEAM = re.compile(r"@[A-Za-z0-9-]+(/[A-Za-z0-9._-]+)?\Z")
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\Z")
STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED", "COMMENTED", "PENDING"})
DECIDING = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


class ApprovalsError(CompilerError):
    """The plan, reviews or members input is not what the command expects."""

    code = "APPROVALS-input"


@dataclass(frozen=True)
class Review:
    login: str
    state: str
    commit_id: str
    submitted_at: datetime
    order: int  # position in the API's list: breaks ties of equal submitted_at


@dataclass(frozen=True)
class Verdict:
    """One required approver: its team, who approved the head commit, and why not when missing."""

    participant: str
    team: str | None
    roles: tuple[str, ...]
    approved_by: tuple[str, ...]
    missing_why: str | None

    @property
    def ok(self) -> bool:
        return self.missing_why is None


def parse_reviews(data: Any) -> list[Review]:
    if not isinstance(data, list):
        raise ApprovalsError("reviews: expected the JSON list GitHub's reviews endpoint returns")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ApprovalsError(f"reviews[{i}]: expected an object")
        user, state, commit, when = (item.get("user"), item.get("state"), item.get("commit_id"),
                                     item.get("submitted_at"))
        if state == "PENDING" and when is None:
            continue  # a review not yet submitted: GitHub shows it only to its author
        login = user.get("login") if isinstance(user, dict) else None
        if not isinstance(login, str) or not LOGIN.match(login):
            raise ApprovalsError(f"reviews[{i}].user.login: expected a GitHub login")
        if state not in STATES:
            raise ApprovalsError(f"reviews[{i}].state: expected one of {', '.join(sorted(STATES))}")
        if not isinstance(commit, str) or not SHA.match(commit):
            raise ApprovalsError(f"reviews[{i}].commit_id: expected a 40-digit commit id")
        out.append(Review(login.lower(), state, commit, _time(when, f"reviews[{i}].submitted_at"), i))
    return out


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ApprovalsError(f"{where}: expected an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApprovalsError(f"{where}: expected an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ApprovalsError(f"{where}: expected a time with its zone (GitHub writes Z)")
    return parsed


def parse_members(data: Any) -> dict[str, frozenset[str]]:
    if not isinstance(data, dict):
        raise ApprovalsError('members: expected {"@org/team": ["login", ...]}')
    out = {}
    for team, logins in data.items():
        if not TEAM.match(team):
            raise ApprovalsError(f"members: {team[:60]!r} is not a review team handle (@org/team)")
        if not isinstance(logins, list) or not all(isinstance(x, str) and LOGIN.match(x) for x in logins):
            raise ApprovalsError(f"members[{team}]: expected a list of GitHub logins")
        out[team.lower()] = frozenset(x.lower() for x in logins)
    return out


def parse_plan(data: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(approvers, blocked) of a `reestr plan --format json` document."""
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("approvers"), list):
        raise ApprovalsError("plan: expected the output of `reestr plan --format json` (format 1)")
    approvers = []
    for i, a in enumerate(data["approvers"]):
        if (not isinstance(a, dict) or not isinstance(a.get("participant"), str)
                or not (a.get("review_team") is None or isinstance(a.get("review_team"), str))
                or not isinstance(a.get("roles", []), list)):
            raise ApprovalsError(f"plan: approvers[{i}]: expected participant, review_team and roles")
        approvers.append(a)
    blocked = data.get("blocked", [])
    if not isinstance(blocked, list) or not all(isinstance(b, str) for b in blocked):
        raise ApprovalsError("plan: blocked: expected a list of strings")
    return approvers, blocked


def latest(reviews: list[Review]) -> dict[str, Review]:
    """Each user's deciding review: the last APPROVED / CHANGES_REQUESTED / DISMISSED one."""
    out: dict[str, Review] = {}
    for r in sorted(reviews, key=lambda r: (r.submitted_at, r.order)):
        if r.state in DECIDING:
            out[r.login] = r
    return out


def check(plan: Any, reviews: Any, members: Any, head: str) -> tuple[list[Verdict], list[str]]:
    """(a verdict per required approver, the plan's blocked notes); all ok ⇔ mergeable."""
    if not SHA.match(head):
        raise ApprovalsError("--head: expected the 40-digit commit id of the pull request's head")
    approvers, blocked = parse_plan(plan)
    state = latest(parse_reviews(reviews))
    teams = parse_members(members)
    verdicts = []
    for a in approvers:
        team = a.get("review_team")
        roles = tuple(str(r) for r in a.get("roles", []))
        if team is None:
            verdicts.append(Verdict(a["participant"], None, roles, (), "no review team in the registry"))
            continue
        team_members = teams.get(team.lower())
        if team_members is None:
            verdicts.append(Verdict(a["participant"], team, roles, (), f"no member list for {team}"))
            continue
        ok = tuple(sorted(login for login in team_members
                          if login in state and state[login].state == "APPROVED"
                          and state[login].commit_id == head))
        why = None
        if not ok:
            stale = sorted(login for login in team_members if login in state
                           and state[login].state == "APPROVED" and state[login].commit_id != head)
            why = (f"approved an earlier commit only ({', '.join(stale)}): approve {head[:12]}"
                   if stale else f"no member of {team} has approved {head[:12]}")
        verdicts.append(Verdict(a["participant"], team, roles, ok, why))
    return verdicts, blocked


def render(verdicts: list[Verdict], blocked: list[str], head: str) -> str:
    lines = [f"error: {b}" for b in blocked]
    for v in verdicts:
        who = f"{v.participant} {v.team or '(no review team)'} ({', '.join(v.roles)})"
        lines.append(f"ok       {who}: approved by {', '.join(v.approved_by)}" if v.ok
                     else f"missing  {who}: {v.missing_why}")
    missing = [v.participant for v in verdicts if not v.ok]
    if blocked:
        lines.append("not approvable: the plan cannot judge the change until every document loads")
    elif missing:
        lines.append(f"missing approvals on {head[:12]}: {', '.join(missing)}")
    else:
        lines.append(f"every required approver has approved {head[:12]}")
    return "\n".join(lines) + "\n"
