"""Bundle acceptance, persistence and sources: attacks keep the last good bundle (DESIGN §6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from compiler.trust import load_public_key
from proxy.bundles import BundleStore, FileSource, UrlSource, poll_once, read_state
from tests.proxy.conftest import NOW, Keys, Pki, sign, signed_bundle


def store_for(keys: Keys, state_dir: Path) -> BundleStore:
    return BundleStore("ved3", [load_public_key(keys.operator_pub)], 1, state_dir)


@pytest.fixture
def store(keys: Keys, pki: Pki, tmp_path: Path) -> BundleStore:
    s = store_for(keys, tmp_path / "state")
    s.load_state()
    assert s.offer(sign(signed_bundle(pki, serial=10), keys.operator), "test")
    return s


def _tampered(pki: Pki, keys: Keys) -> bytes:
    data = sign(signed_bundle(pki, serial=11), keys.operator)
    return data.replace(b'"serial":11', b'"serial":12')


ATTACKS: dict[str, Callable[[Pki, Keys], bytes]] = {
    "tampered-byte": _tampered,
    "unknown-key": lambda pki, keys: sign(signed_bundle(pki, serial=11), keys.other),
    "unsigned": lambda pki, keys: sign(signed_bundle(pki, serial=11)),
    "expired": lambda pki, keys: sign(signed_bundle(pki, serial=11, expires_in=-dt.timedelta(seconds=1)),
                                      keys.operator),
    "rollback": lambda pki, keys: sign(signed_bundle(pki, serial=9), keys.operator),
    "equal-serial-other-bytes": lambda pki, keys: sign(
        {**signed_bundle(pki, serial=10), "grants": {"x": {}}}, keys.operator),
    "other-audience": lambda pki, keys: sign(signed_bundle(pki, serial=11, audience="ved1"),
                                             keys.operator),
    "not-json": lambda pki, keys: b"{not json",
    "malformed-content": lambda pki, keys: sign(
        {**signed_bundle(pki, serial=11), "participant": None}, keys.operator),
}
CODES = {"tampered-byte": "bad-signature", "unknown-key": "bad-signature", "unsigned": "bad-signature",
         "expired": "expired", "rollback": "rollback", "equal-serial-other-bytes": "serial-reuse",
         "other-audience": "wrong-audience", "not-json": "malformed", "malformed-content": "malformed"}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_attack_keeps_last_good(store: BundleStore, pki: Pki, keys: Keys, attack: str) -> None:
    good = store.current
    assert not store.offer(ATTACKS[attack](pki, keys), "attack")
    assert store.current is good and store.in_force() is good
    assert store.last_refusal is not None and store.last_refusal.code == CODES[attack]
    state = read_state(store.state_dir)
    assert state["in_force"]["serial"] == 10
    assert state["last_refusal"]["code"] == CODES[attack]
    assert gc.isenabled()  # offer pauses the collector while it parses, and resumes it on refusal


def test_offer_pauses_the_collector_only_while_parsing(keys: Keys, pki: Pki, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy import bundles

    seen: list[bool] = []
    real = bundles.parse_policy
    monkeypatch.setattr(bundles, "parse_policy", lambda signed: (seen.append(gc.isenabled()), real(signed))[1])
    s = store_for(keys, tmp_path / "state")
    s.load_state()
    assert s.offer(sign(signed_bundle(pki, serial=10), keys.operator), "test")
    assert seen == [False] and gc.isenabled()


def test_newer_bundle_swaps_atomically(store: BundleStore, pki: Pki, keys: Keys) -> None:
    old = store.current
    assert store.offer(sign(signed_bundle(pki, serial=11), keys.operator), "test")
    assert old is not None and old.serial == 10  # what in-flight requests hold is unchanged
    assert store.current is not None and store.current.serial == 11


def test_same_bundle_again_is_not_a_swap(store: BundleStore, pki: Pki, keys: Keys) -> None:
    assert not store.offer(sign(signed_bundle(pki, serial=10), keys.operator), "again")
    assert store.last_refusal is None


def test_restart_starts_from_state(store: BundleStore, pki: Pki, keys: Keys) -> None:
    store.offer(sign(signed_bundle(pki, serial=12), keys.operator), "test")
    again = store_for(keys, store.state_dir)
    again.load_state()
    assert again.current is not None and again.current.serial == 12
    assert not again.offer(sign(signed_bundle(pki, serial=11), keys.operator), "rollback")
    assert again.last_refusal is not None and again.last_refusal.code == "rollback"


def test_rollback_refused_after_restart_even_without_bundle_file(store: BundleStore, pki: Pki,
                                                                 keys: Keys) -> None:
    (store.state_dir / "bundle.json").unlink()
    again = store_for(keys, store.state_dir)
    again.load_state()
    assert again.current is None
    assert not again.offer(sign(signed_bundle(pki, serial=9), keys.operator), "rollback")


def test_expired_in_force_fails_closed(store: BundleStore) -> None:
    later = NOW + dt.timedelta(hours=5)
    assert store.in_force(later) is None
    assert "expired" in (store.not_ready_reason(later) or "")
    assert store.not_ready_reason() is None


def test_expired_persisted_bundle_is_not_used(store: BundleStore, keys: Keys) -> None:
    again = store_for(keys, store.state_dir)
    again.load_state(now=NOW + dt.timedelta(hours=5))
    assert again.current is None
    assert again.not_ready_reason() is not None


def test_no_bundle_not_ready(keys: Keys, tmp_path: Path) -> None:
    s = store_for(keys, tmp_path / "state")
    s.load_state()
    assert s.in_force() is None and s.not_ready_reason() == "no valid bundle"


def test_file_source_reports_changes_only(tmp_path: Path, store: BundleStore, pki: Pki,
                                          keys: Keys) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(sign(signed_bundle(pki, serial=11), keys.operator))
    source = FileSource(path)

    async def go() -> list[bool]:
        first = await poll_once(store, source)
        second = await poll_once(store, source)
        path.write_bytes(sign(signed_bundle(pki, serial=12), keys.operator))
        return [first, second, await poll_once(store, source)]

    assert asyncio.run(go()) == [True, False, True]
    path.unlink()
    assert not asyncio.run(poll_once(store, source))
    assert store.last_fetch_error is not None and "b.json" in store.last_fetch_error


@pytest.fixture
def bundle_server() -> Iterator[dict[str, Any]]:
    served: dict[str, Any] = {"body": b"", "etag": '"v1"', "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served["requests"].append(self.headers.get("If-None-Match"))
            if self.headers.get("If-None-Match") == served["etag"]:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", served["etag"])
            self.send_header("Content-Length", str(len(served["body"])))
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served["url"] = f"http://127.0.0.1:{server.server_address[1]}/ved3.json"
    yield served
    server.shutdown()
    server.server_close()


def test_url_source_uses_etag(bundle_server: dict[str, Any], store: BundleStore, pki: Pki,
                              keys: Keys) -> None:
    bundle_server["body"] = sign(signed_bundle(pki, serial=11), keys.operator)

    async def go() -> list[bool]:
        source = UrlSource(bundle_server["url"])
        results = [await poll_once(store, source), await poll_once(store, source)]
        bundle_server["body"] = sign(signed_bundle(pki, serial=9), keys.operator)
        bundle_server["etag"] = '"v2"'
        results.append(await poll_once(store, source))
        await source.aclose()
        return results

    assert asyncio.run(go()) == [True, False, False]
    assert bundle_server["requests"] == [None, '"v1"', '"v1"']
    assert store.current is not None and store.current.serial == 11
    assert store.last_refusal is not None and store.last_refusal.code == "rollback"


def test_unwritable_state_dir_refuses_the_swap(store: BundleStore, pki: Pki, keys: Keys) -> None:
    from proxy.errors import StateDirError

    (store.state_dir / "bundle.json").unlink()
    (store.state_dir / "bundle.json").mkdir()  # os.replace onto a directory fails
    with pytest.raises(StateDirError, match="cannot save bundle"):
        store.offer(sign(signed_bundle(pki, serial=11), keys.operator), "test")
    assert store.current is not None and store.current.serial == 10
    assert store.highest is not None and store.highest[0] == 10
