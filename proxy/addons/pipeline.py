"""Pipeline: the sidecar's stages as ONE mitmproxy addon, run in order, failing closed.

mitmproxy offers every event to every addon: for each one it walks the addon tree, looks the hook
up by name, reads the event's arguments from its dataclass fields and checks for an awaitable
(`AddonManager.invoke_addon`). With the sidecar's stages as separate addons that was about 5 µs
per stage per event in the hot state, more in the cold one (docs/performance.md); as one addon
mitmproxy does it once per event, and the pipeline calls the stages' bound methods directly from
per-hook lists made once at start.

It also closes a hole separate addons leave open: mitmproxy logs an exception raised by an addon
and goes on with the next one, so a bug in a deciding stage (`Enforce.request` raising) let the
flow go upstream with no decision. Here an exception in any stage of a flow hook turns the flow
into a refusal (`internal-error`, 500, nothing forwarded); the later stages still run, so the
refusal is journaled and counted. What the exception said goes to the log by type and place only
(its text may quote the message).
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import hooks, http

from proxy.addons._responses import DECISION, RESPONSE_RECORD, refuse
from proxy.policy import deny

log = logging.getLogger("reestr.pipeline")

_FLOW_HOOKS = frozenset({"requestheaders", "request", "responseheaders", "response", "error"})


class Pipeline:
    """One addon whose hooks run the stages' hooks of the same name, in the stages' order."""

    name = "reestr"

    def __init__(self, *stages: object) -> None:
        self.stages: tuple[object, ...] = stages
        for hook in hooks.all_hooks:
            methods = [m for m in (getattr(stage, hook, None) for stage in stages) if callable(m)]
            if methods:
                setattr(self, hook, _dispatcher(hook, methods))


def _dispatcher(hook: str, methods: Sequence[Callable[..., Any]]) -> Callable[..., Any]:
    """A hook that calls `methods` in order; async when any of them is. Startup and connection
    hooks let exceptions through as mitmproxy would (a bad option must stop the start); flow hooks
    fail closed (`_failed`)."""
    flow_hook = hook in _FLOW_HOOKS
    if not any(inspect.iscoroutinefunction(m) for m in methods):
        if not flow_hook:
            def run_plain(*args: Any) -> None:
                for method in methods:
                    method(*args)
            return run_plain

        def run_sync(flow: http.HTTPFlow) -> None:
            for method in methods:
                try:
                    method(flow)
                except Exception as e:
                    _failed(method, e, flow)
        return run_sync

    async def run_async(*args: Any) -> None:
        for method in methods:
            try:
                result = method(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as e:
                if not flow_hook:
                    raise
                _failed(method, e, args[0])
    return run_async


def _failed(method: Callable[..., Any], error: Exception, flow: http.HTTPFlow) -> None:
    """Log where a stage failed (not what it said: the text may quote the message) and refuse
    the flow unless its answer is already journaled."""
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    place = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    log.error("reestr: %s in %s%s: the call is refused (internal-error)",
              type(error).__name__, getattr(method, "__qualname__", "a stage"), place)
    if flow.metadata.get(RESPONSE_RECORD) is not None or flow.error is not None:
        return  # the answer is already durable, or there is none to replace (the `error` hook)
    decision = flow.metadata.get(DECISION)
    refuse(flow, deny("internal-error", **({} if decision is None else {
        "sid": decision.sid, "operation": decision.operation, "consumer": decision.consumer,
        "protocol": decision.protocol})))
