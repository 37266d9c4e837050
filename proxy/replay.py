"""Replay protection for signed messages (issue 9): a signed message is accepted once.

A message id already accepted for the same service within the window is `replayed-message`, and
so is a message whose own time lies outside the window (an old capture re-sent after its id has
left the window). The SMEV 3 `MessageID` is a time-based UUID (version 1), so it carries its own
time; other messages without an id or time are not checked here (docs/sidecar.md). The window
is `signatures.replay_window_seconds` of the config.

Survives a restart: the runner seeds the guard from the journal's allowed request records of the
last window (`seed`), which are durable before anything was forwarded. Pure: no mitmproxy, no
database; memory is one entry per accepted signed message within the window.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

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


class ReplayGuard:
    """The (service, message id) pairs accepted within the window."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._seen: dict[tuple[str, str], datetime] = {}
        self._order: deque[tuple[datetime, tuple[str, str]]] = deque()

    def check(self, sid: str, message_id: str | None, now: datetime) -> str | None:
        """`replayed-message` if the message was seen or is outside the window, else None."""
        if message_id is None:
            return None
        self._expire(now)
        if (sid, message_id) in self._seen:
            return "replayed-message"
        when = message_time(message_id)
        if when is not None and abs(now - when) > self.window:
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
