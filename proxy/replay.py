"""Replay protection for signed messages (issue 9): a signed message is accepted once.

A message id already accepted for the same service within the window is `replayed-message`, and
so is a message whose own time lies outside the window (an old capture re-sent after its id has
left the window). The SMEV 3 `MessageID` is a time-based UUID (version 1), so it carries its own
time; an SMEV 3 message without an id or time is not checked here (docs/sidecar.md). SMEV 2
messages have no sender-chosen id in the signed Body: a message is one signing act, so its id is
`sig-sha256:<SHA-256 of the author's SignatureValue>` (a captured message re-sent carries the same
value; GOST signatures are randomised, so the author signing again makes a new one) and its time
is the signed `smev:Message/smev:Date`; a signed SMEV 2 message without a readable date is
refused (its age cannot be checked). `plain` signed messages the same way by their SignatureValue
and without a time (XMLDSig there carries none): within the window they are accepted once. The
window is `signatures.replay_window_seconds` of the config.

Survives a restart: the runner seeds the guard from the journal's allowed request records of the
last window (`seed`), which are durable before anything was forwarded. Pure: no mitmproxy, no
database; memory is one entry per accepted signed message within the window.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from proxy.soap.message import Message
from proxy.soap.verdict import SignatureResult

_UUID_EPOCH = datetime(1582, 10, 15, tzinfo=UTC)


def message_time(message_id: str | None) -> datetime | None:
    """The time inside a version-1 UUID message id (SMEV 3 MessageID), else None."""
    if message_id is None:
        return None
    try:
        value = uuid.UUID(message_id)
    except ValueError:
        return None
    if value.version != 1:
        return None
    return _UUID_EPOCH + timedelta(microseconds=value.time // 10)


_SMEV2 = "http://smev.gosuslugi.ru/"


@dataclass(frozen=True)
class Identity:
    """What replay protection knows of one signed message: its id, and its own time if any."""

    key: str | None
    when: datetime | None
    needs_time: bool = False  # SMEV 2: a message without its date is refused


def identity(message: Message, signature: SignatureResult) -> Identity:
    """The replay id and time of a validly signed message, by its profile."""
    content = message.content
    if content.profile == "smev3":
        return Identity(content.message_id, message_time(content.message_id))
    key = f"sig-sha256:{signature.value_sha256}" if signature.value_sha256 else None
    if content.profile == "smev2":
        return Identity(key, smev2_time(message.envelope.body), needs_time=True)
    return Identity(key, None)


def smev2_time(body: etree._Element) -> datetime | None:
    """The one `smev:Message/smev:Date` inside the Body (signed with it), aware; else None."""
    dates = [d for m in body.iter() if isinstance(m.tag, str) and m.tag.startswith("{" + _SMEV2)
             and m.tag.endswith("}Message") for d in m if isinstance(d.tag, str) and d.tag.endswith("}Date")]
    if len(dates) != 1:
        return None
    try:
        when = datetime.fromisoformat((dates[0].text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


class ReplayGuard:
    """The (service, message id) pairs accepted within the window."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._seen: dict[tuple[str, str], datetime] = {}
        self._order: deque[tuple[datetime, tuple[str, str]]] = deque()

    def check(self, sid: str, message_id: str | None, now: datetime) -> str | None:
        """`replayed-message` if the message was seen or is outside the window, else None (an
        SMEV 3 MessageID: its time is the version-1 UUID's)."""
        return self.check_identity(sid, Identity(message_id, message_time(message_id)), now)

    def check_identity(self, sid: str, who: Identity, now: datetime) -> str | None:
        """`replayed-message` if the message was seen, is outside the window, or must carry a
        time and does not; else None."""
        if who.key is None:
            return None
        self._expire(now)
        if (sid, who.key) in self._seen:
            return "replayed-message"
        if who.when is None and who.needs_time:
            return "replayed-message"
        if who.when is not None and abs(now - who.when) > self.window:
            return "replayed-message"
        return None

    def remember(self, sid: str, message_id: str | None, now: datetime) -> None:
        """Record an accepted message."""
        if message_id is None or (sid, message_id) in self._seen:
            return
        self._seen[(sid, message_id)] = now
        self._order.append((now, (sid, message_id)))

    def seed(self, records: Iterable[Mapping[str, Any]], now: datetime) -> int:
        """Remember the allowed, validly signed inbound requests of the journal; how many."""
        count = 0
        for r in records:
            check = r.get("signature_check") or ""
            if (r.get("kind") == "request" and r.get("direction") == "inbound" and r.get("decision") == "allow"
                    and check.startswith("valid") and r.get("sid") and r.get("message_id")):
                when = datetime.fromisoformat(str(r["time"]).replace("Z", "+00:00"))
                if now - when <= self.window:
                    self.remember(str(r["sid"]), str(r["message_id"]), when)
                    count += 1
        return count

    def _expire(self, now: datetime) -> None:
        while self._order and now - self._order[0][0] > self.window:
            _, key = self._order.popleft()
            self._seen.pop(key, None)
