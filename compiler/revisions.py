"""The registry and payload-schema files as they are at a git revision or in the working tree.

`reestr plan` and `reestr breaking` compare two states of the same repository. Both sides must
name files the same way (repository-relative, e.g. `registry/consumers/ved1.yaml`), so a problem
found on the working tree carries the path a pull-request annotation expects.
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from compiler.errors import Problem
from compiler.models import FOLDERS
from compiler.registry import SYMLINK_MESSAGE, Registry, RegistryPathError, load_files, load_git


class RevisionError(RegistryPathError):
    """A git revision that does not name a commit, or a directory that is not a git repository."""


def _git(repo: str | Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)


def resolve(repo: str | Path, rev: str) -> str:
    """The commit id `rev` names in `repo`; RevisionError when it names none."""
    if rev.startswith("-"):
        raise RevisionError(f"bad revision {rev!r}: must not start with '-'")
    done = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if done.returncode != 0:
        inside = _git(repo, "rev-parse", "--git-dir")
        if inside.returncode != 0:
            raise RevisionError(f"{repo}: not a git repository")
        raise RevisionError(f"bad revision {rev!r}: no such commit in {repo}")
    return done.stdout.decode().strip()


def merge_base(repo: str | Path, base: str, head: str | None) -> str:
    """The merge base of `base` and `head` (HEAD for the working tree): what a pull request
    changes is measured from there, not from the tip of a base branch that moved on since."""
    ours, theirs = resolve(repo, base), resolve(repo, head or "HEAD")
    done = _git(repo, "merge-base", ours, theirs)
    if done.returncode != 0:
        raise RevisionError(f"{base} and {head or 'HEAD'} have no common ancestor")
    return done.stdout.decode().strip()


def load_registry(repo: str | Path, rev: str | None, subdir: str = "registry") -> Registry:
    """The registry at commit `rev`, or in the working tree when `rev` is None."""
    sub = PurePosixPath(subdir).as_posix()
    if rev is not None:
        return load_git(repo, resolve(repo, rev), sub)
    root = Path(repo) / sub
    if not root.is_dir():
        raise RegistryPathError(f"{root}: not a directory")
    files: dict[str, bytes] = {}
    links: list[Problem] = []
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*")):
            if path.is_symlink():  # never followed (compiler.registry.read_tree)
                links.append(Problem(f"{sub}/{folder}/{path.name}", 1, 1, "PATH-symlink",
                                     SYMLINK_MESSAGE))
            elif path.is_file() and path.suffix in (".yaml", ".yml"):
                files[f"{sub}/{folder}/{path.name}"] = path.read_bytes()
    registry = load_files(files, base=sub)
    registry.problems = sorted(registry.problems + links)
    return registry


def read_file(repo: str | Path, rev: str | None, path: str) -> bytes | None:
    """The bytes of repository-relative `path` at `rev` (working tree when None); None if absent."""
    if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        return None  # registered schema paths are repository-relative (schemas/services/...)
    if rev is None:
        file = Path(repo) / path
        root = Path(repo).resolve()
        if any(p.is_symlink() for p in (file, *file.parents) if p.is_relative_to(repo)) or \
                not file.resolve().is_relative_to(root):
            return None  # a link, or anything resolving outside the repository, is not read
        return file.read_bytes() if file.is_file() else None
    done = _git(repo, "show", f"{resolve(repo, rev)}:{path}")
    return done.stdout if done.returncode == 0 else None
