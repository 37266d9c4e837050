"""When a deprecation or a planned classification really reached the base branch (R7, R8).

The `announced` date in the YAML is the author's word; a backdated one passed R7 with a warning,
and the next pull request removed the operation with "breaking changes: 0" (issue 11, finding 4).
The notice runs from the day the announcement was first on the base branch: the committer date of
the first commit, following first parents (the merges and squashes GitHub made on the protected
branch, whose dates GitHub sets), from which the deprecation stayed present until the base revision.

Keys: `(sid, operation name)` for a deprecation, `(sid, "classification:<to>")` for a planned
classification.
"""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from compiler.models import Service
from compiler.registry import RegistryPathError
from compiler.yamlsrc import load_bytes

Key = tuple[str, str]


def _git(repo: str | Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=False)
    if done.returncode != 0:
        raise RegistryPathError(f"git {args[0]}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def announcements(repo: str | Path, rev: str, registry_dir: str = "registry") -> dict[Key, date]:
    """Key → the day its announcement reached the branch of `rev` (see the module docstring)."""
    folder = f"{PurePosixPath(registry_dir).as_posix()}/services"
    names = [n for n in _git(repo, "ls-tree", "--name-only", "-z", rev, "--", f"{folder}/")
             .decode().split("\0") if n.endswith((".yaml", ".yml"))]
    found: dict[Key, date] = {}
    for name in names:
        log = _git(repo, "log", "--first-parent", "--reverse", "--format=%H %cs", rev, "--", name).decode()
        present: dict[Key, date] = {}
        for line in log.splitlines():
            commit, day = line.split()
            keys = _keys(_git_blob(repo, commit, name))
            present = {k: present.get(k, date.fromisoformat(day)) for k in keys}
        found.update(present)
    return found


def _git_blob(repo: str | Path, commit: str, name: str) -> bytes | None:
    done = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{name}"], capture_output=True,
                          check=False)
    return done.stdout if done.returncode == 0 else None


def _keys(raw: bytes | None) -> set[Key]:
    """The announcements a service file holds at one commit (none when it does not load)."""
    if raw is None:
        return set()
    loaded = load_bytes(raw)
    if loaded.data is None:
        return set()
    try:
        svc = Service.model_validate(loaded.data)
    except ValidationError:
        return set()
    sid = svc.metadata.sid
    keys = {(sid, op.name) for op in svc.spec.operations if op.deprecation is not None}
    if svc.spec.planned_classification is not None:
        keys.add((sid, f"classification:{svc.spec.planned_classification.to.value}"))
    return keys
