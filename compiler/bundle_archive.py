"""The bundle archive: every published bundle kept by serial, never overwritten, with its audit record.

A journal record names the bundle serial it was decided under; the archive turns that serial into
the signed bundle itself and into who made it (docs/operations.md, "Audit"):

```
<archive>/<serial>/<participant>.json   the signed bundles, byte for byte as published
<archive>/<serial>/index.json
<archive>/<serial>/audit.json           commit, registry digest, times, bundle digests and
                                        signatures, pull request, plan, approvals, who signed
```

`write` refuses a serial already archived with other bytes (an archive that can be rewritten
proves nothing); the same bytes again are accepted, so a re-run of a publish job is harmless.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from compiler.errors import CompilerError
from compiler.trust import canonical_json

AUDIT_FORMAT = 1


class ArchiveError(CompilerError):
    """The bundles cannot be archived, or an archive entry is missing or not what it should be."""

    code = "ARCHIVE-invalid"


def _signed(data: bytes, name: str) -> dict[str, Any]:
    try:
        envelope = json.loads(data)
        signed = envelope["signed"]
        assert isinstance(signed, dict) and isinstance(envelope["signatures"], list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise ArchiveError(f"{name}: not a signed envelope") from None
    return envelope  # type: ignore[no-any-return]


def write(bundles: Path, archive: Path, *, pr: int | None = None, plan: Any = None,
          approvals: Any = None, triggered_by: str | None = None) -> Path:
    """Archive the bundles of `bundles/` (index.json names them) under `archive/<serial>/`."""
    try:
        index_bytes = (bundles / "index.json").read_bytes()
    except OSError as e:
        raise ArchiveError(f"{bundles}/index.json: {e.strerror}") from e
    index = _signed(index_bytes, "index.json")["signed"]
    serial = index.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise ArchiveError("index.json: no serial")
    files = {"index.json": index_bytes}
    for name in sorted(index.get("bundles", {})):
        files[f"{name}.json"] = (bundles / f"{name}.json").read_bytes()
    signatures = {name: [{"keyid": s.get("keyid"), "sig": s.get("sig")}
                         for s in _signed(data, name)["signatures"]] for name, data in files.items()}
    record = {"format": AUDIT_FORMAT, "serial": serial, "commit": index.get("source", {}).get("commit"),
              "registry_digest": index.get("source", {}).get("registry_digest"),
              "issued_at": index.get("issued_at"), "expires_at": index.get("expires_at"),
              "bundles": {name: {"sha256": hashlib.sha256(data).hexdigest(), "signatures": signatures[name]}
                          for name, data in files.items()},
              "pull_request": pr, "plan": plan, "approvals": approvals, "triggered_by": triggered_by}
    files["audit.json"] = canonical_json(record) + b"\n"
    target = archive / str(serial)
    for name, data in files.items():
        existing = target / name
        if existing.exists() and existing.read_bytes() != data:
            raise ArchiveError(f"{existing}: serial {serial} is archived with other content; "
                               "an archived serial is never overwritten")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = target / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(target / name)
    return target


def read(archive: Path, serial: int) -> tuple[dict[str, Any], Path]:
    """(audit record, folder) of `serial`; ArchiveError when it was never archived or is altered."""
    folder = archive / str(serial)
    try:
        record = json.loads((folder / "audit.json").read_bytes())
    except OSError:
        raise ArchiveError(f"serial {serial} is not in the archive {archive}") from None
    except ValueError:
        raise ArchiveError(f"{folder}/audit.json: not JSON") from None
    if not isinstance(record, dict) or record.get("serial") != serial:
        raise ArchiveError(f"{folder}/audit.json: not the audit record of serial {serial}")
    for name, entry in record.get("bundles", {}).items():
        try:
            data = (folder / name).read_bytes()
        except OSError:
            raise ArchiveError(f"{folder}/{name}: missing from the archive") from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise ArchiveError(f"{folder}/{name}: differs from its digest in audit.json")
    return record, folder
