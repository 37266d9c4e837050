"""TUF distribution (issue 14): what one sidecar downloads per poll, and how long a refresh takes,
when the repository holds the bundles of 10,000 participants.

    .venv/bin/python bench/tuf_bench.py [--participants 10000] [--bins 2,256,1024] [--polls 15]

For each bin count, a repository is made with compiler.tuf_repo (init + publish of one bundle per
participant), served over HTTP on 127.0.0.1 by a thread, and one sidecar's real BundleStore +
TufSource (python-tuf ngclient, counting the bytes of every response body) polls it:

- first poll: a fresh state directory (root, timestamp, snapshot, targets, its bin, its bundle);
- unchanged: the repository did not change since the last poll (the median of --polls);
- timestamp re-signed: the cron job signed a new timestamp, nothing else changed;
- other changed: another participant's bundle (in another bin) changed;
- own changed: this sidecar's bundle changed (a new serial): the poll that brings it.

Bins = 2 is the baseline (next to no delegation: each bin lists half of all bundles). Times are
medians of wall time for the whole poll (refresh + download + `BundleStore.offer`: verify + index +
persist) and for `offer` alone. The bundles are small synthetic ones (one service, a few callers):
the bundle's own size is in the table; what grows with the participant count is the metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.ngclient import Urllib3Fetcher

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compiler import tuf_repo
from compiler.trust import format_time, sign_envelope
from proxy.bundles import BundleStore, poll_once
from proxy.tuf_source import TufSource
from tests.proxy.tufrepo import RepoServer


class CountingFetcher(Urllib3Fetcher):
    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.files = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.files += 1
        for chunk in super()._fetch(url):
            self.bytes += len(chunk)
            yield chunk


def bundle(pid: str, serial: int, now: datetime) -> dict[str, Any]:
    fp = f"{int(pid[1:]):064x}"
    caller = {"access": "full", "operations": None, "grant": "grants/x.yaml", "legal_basis": "law",
              "valid_until": None, "ends_on": None, "certificates": [fp]}
    return {"type": "reestr-bundle", "format": 1, "audience": pid, "serial": serial,
            "issued_at": format_time(now), "expires_at": format_time(now + timedelta(days=30)),
            "source": {"commit": None, "registry_digest": "sha256:" + "0" * 64},
            "certificates": {fp: {"participant": pid, "subject": f"CN={pid}", "not_before": "2026-01-01T00:00:00Z",
                                  "not_after": "2027-01-01T00:00:00Z"}},
            "participant": {"id": pid, "name": f"Участник {pid}", "status": "active", "ends_on": None,
                            "sidecar": f"https://{pid}.example", "certificates": [fp]},
            "services": {f"SID{pid[1:]}": {"name": "service", "protocol": "rest", "classification": "public",
                                           "signed_messages": False,
                                           "operations": {"op1": {"method": "GET", "path": "/x/{id}"}},
                                           "callers": {pid: caller}}},
            "grants": {}}


def run(participants: int, bit_length: int, polls: int, tmp: Path) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    me = f"p{participants * 2 // 5:05d}"  # the sidecar measured: any participant
    offline, online = CryptoSigner(Ed25519PrivateKey.generate()), CryptoSigner(Ed25519PrivateKey.generate())
    repo = tuf_repo.Repository(tmp / "repo")
    keys = {r: [offline.public_key] for r in ("root", "targets")} | \
        {r: [online.public_key] for r in ("snapshot", "timestamp", "bins")}
    tuf_repo.init(repo, keys=keys, thresholds={}, signers=[offline], bins_bit_length=bit_length)
    pids = [f"p{i:05d}" for i in range(participants)]
    data = {pid: sign_envelope(bundle(pid, 1, now), []) for pid in pids}
    started = time.perf_counter()
    tuf_repo.publish(repo, data, signers=[online])
    publish_s = time.perf_counter() - started
    server = RepoServer(repo.path)
    fetcher = CountingFetcher()
    store = BundleStore(me, [], 1, tmp / "state", tuf=True)
    store.load_state()
    source = TufSource(server.url, me, (repo.metadata_dir / "1.root.json").read_bytes(), tmp / "state",
                       1 << 24, fetcher)
    offer_times: list[float] = []
    original = store.offer

    def timed_offer(*args: Any, **kw: Any) -> bool:
        t = time.perf_counter()
        try:
            return original(*args, **kw)
        finally:
            offer_times.append(time.perf_counter() - t)

    store.offer = timed_offer  # type: ignore[method-assign]

    def poll() -> tuple[int, int, float]:
        fetcher.bytes = fetcher.files = 0
        t = time.perf_counter()
        asyncio.run(poll_once(store, source))
        return fetcher.bytes, fetcher.files, time.perf_counter() - t

    out: dict[str, Any] = {"bins": 2 ** bit_length, "publish_s": publish_s,
                           "bundle_bytes": len(data[me])}
    out["first"] = poll()
    unchanged = [poll() for _ in range(polls)]
    out["unchanged"] = (unchanged[0][0], unchanged[0][1], statistics.median(u[2] for u in unchanged))
    tuf_repo.resign_timestamp(repo, signers=[online])
    out["timestamp"] = poll()
    other = next(p for p in pids if _bin(repo, p) != _bin(repo, me))
    serial, own, others = 1, [], []
    for _ in range(max(3, polls // 3)):
        serial += 1
        data[other] = sign_envelope(bundle(other, serial, now), [])
        tuf_repo.publish(repo, data, signers=[online])
        others.append(poll())
        data[me] = sign_envelope(bundle(me, serial, now), [])
        tuf_repo.publish(repo, data, signers=[online])
        own.append(poll())
    assert store.current is not None and store.current.serial == serial, store.last_refusal
    out["other"] = (others[-1][0], others[-1][1], statistics.median(o[2] for o in others))
    out["own"] = (own[-1][0], own[-1][1], statistics.median(o[2] for o in own))
    out["offer_s"] = statistics.median(offer_times)
    server.close()
    return out


def _bin(repo: tuf_repo.Repository, pid: str) -> str:
    succinct = repo.targets().signed.delegations.succinct_roles  # type: ignore[union-attr]
    assert succinct is not None
    return succinct.get_role_for_target(tuf_repo.target_path(pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--bins", default="2,256,1024", help="comma-separated bin counts (powers of two)")
    parser.add_argument("--polls", type=int, default=15)
    args = parser.parse_args()
    rows = []
    for bins in (int(b) for b in args.bins.split(",")):
        with tempfile.TemporaryDirectory(prefix="tuf-bench-") as tmp:
            rows.append(run(args.participants, bins.bit_length() - 1, args.polls, Path(tmp)))
    print(f"TUF distribution, {args.participants} participants; one sidecar polling over HTTP on 127.0.0.1 "
          f"(bundle {rows[0]['bundle_bytes']} bytes)")
    print(f"{'bins':>6} {'scenario':<22} {'bytes':>10} {'files':>6} {'poll ms':>9}")
    for row in rows:
        for key, label in (("first", "first poll"), ("unchanged", "unchanged (median)"),
                           ("timestamp", "timestamp re-signed"), ("other", "other bundle changed"),
                           ("own", "own bundle changed")):
            b, f, s = row[key]
            print(f"{row['bins']:>6} {label:<22} {b:>10,} {f:>6} {s * 1000:>9.1f}")
        base = rows[0]["own"][0]
        print(f"{row['bins']:>6} {'offer (load) median':<22} {'':>10} {'':>6} {row['offer_s'] * 1000:>9.1f}"
              f"   publish {row['publish_s']:.1f} s; own-change bytes {row['own'][0] / base:.3f}× bins=2")


if __name__ == "__main__":
    main()
