"""The broken registry fixtures: each case yields exactly its expected problems, at the right place.

A case (tests/fixtures/broken/<case>/, format in its README) is an overlay on the example registry.
It is assembled in a temporary directory beside a copy of `schemas/`, validated as of a fixed day,
and the (path, line, col, code) multiset must equal `expected.txt` exactly: a missing problem, an
extra one, or one pointing at another node fails. A code the loader or the rules can produce with
no case fails too, so a new code cannot arrive without a fixture.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from compiler.validate import validate

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "fixtures" / "broken"
TODAY = date(2026, 11, 25)
CASES = sorted(p.name for p in BROKEN.iterdir() if p.is_dir())
# Modules whose problems `validate` reports; their code literals must all have a case.
SOURCES = ["yamlsrc.py", "registry.py", "schemas.py", "rules.py", "validate.py", "codeowners.py"]
# Codes built at run time (f-strings) with every value they can take; none today, the scan refuses
# an unlisted one so a computed code cannot slip past the coverage check.
DYNAMIC: dict[str, list[str]] = {}
# A code is a whole string literal shaped PREFIX-words (`R4-legal-basis-missing`, `YAML-tag`).
_CODE = re.compile(r"""(?<![\w-])f?["']([A-Z][A-Z0-9]*-[a-z{][^"'\s]*)["']""")
Expectation = tuple[str, int, int, str]


def assemble(case: str, tmp: Path) -> Path:
    """Copy registry/ and schemas/ into tmp, lay the case's files over them; return the registry root.

    `.github/` is not copied: a case that checks CODEOWNERS brings its own (validate checks it only
    when the folder exists, and most cases change who owns what).
    """
    shutil.copytree(ROOT / "registry", tmp / "registry")
    shutil.copytree(ROOT / "schemas", tmp / "schemas")
    overlay = BROKEN / case
    for src in sorted(overlay.rglob("*")):
        rel = src.relative_to(overlay)
        if src.is_dir() or rel.parts[0] not in ("registry", "schemas", ".github"):
            continue
        target = tmp / rel
        if src.name.endswith(".symlink"):  # a symbolic link to the path the file holds
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_name(src.name.removesuffix(".symlink")).symlink_to(src.read_text().strip())
            continue
        if src.name.endswith(".delete"):
            target.with_name(src.name.removesuffix(".delete")).unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return tmp / "registry"


def expected(case: str) -> Counter[Expectation]:
    out: Counter[Expectation] = Counter()
    for raw in (BROKEN / case / "expected.txt").read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        where, code = raw.split()
        path, line, col = where.rsplit(":", 2)
        out[(path, int(line), int(col), code)] += 1
    return out


def found(case: str, tmp: Path) -> Counter[Expectation]:
    root = assemble(case, tmp)
    _, problems = validate(root, TODAY)
    # CODEOWNERS-stale names its file relative to the repository root, the others as loaded.
    return Counter((Path(os.path.relpath(tmp / p.path if not os.path.isabs(p.path) else p.path, root)).as_posix(),
                    p.line, p.col, p.code) for p in problems)


def source_codes() -> set[str]:
    codes: set[str] = set()
    for name in SOURCES:
        for literal in _CODE.findall((ROOT / "compiler" / name).read_text(encoding="utf-8")):
            if "{" in literal:
                assert literal in DYNAMIC, f"{name}: code {literal!r} is built at run time: list its values"
                codes.update(DYNAMIC[literal])
            else:
                codes.add(literal)
    return codes


def test_example_registry_is_clean(tmp_path: Path) -> None:
    _, problems = validate(_plain(tmp_path), TODAY)
    assert problems == []


def _plain(tmp: Path) -> Path:
    shutil.copytree(ROOT / "registry", tmp / "registry")
    shutil.copytree(ROOT / "schemas", tmp / "schemas")
    return tmp / "registry"


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_case_yields_exactly_its_problems(case: str, tmp_path: Path) -> None:
    want = expected(case)
    assert want, f"{case}/expected.txt lists no problem"
    got = found(case, tmp_path)
    assert sorted(got.elements()) == sorted(want.elements())


def test_every_code_has_a_case() -> None:
    covered = {code for case in CASES for (_, _, _, code) in expected(case)}
    codes = source_codes()
    assert len(codes) > 40  # the scan itself works
    assert codes - covered == set()
    assert covered - codes == set(), "expected.txt names a code the sources never produce"


def test_readme_lists_every_case() -> None:
    readme = (BROKEN / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", readme, flags=re.M))
    assert listed == set(CASES)
