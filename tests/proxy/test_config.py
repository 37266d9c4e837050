"""The config file: strict fields, errors naming file and field, paths relative to the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from proxy.config import load_config
from proxy.errors import ConfigError
from tests.proxy.conftest import Keys, Pki, write_config


@pytest.fixture
def config_path(tmp_path: Path, pki: Pki, keys: Keys) -> Path:
    return write_config(tmp_path, pki, keys, "http://127.0.0.1:9", "bundle.json")


def test_loads_and_resolves_relative_paths(config_path: Path) -> None:
    cfg = load_config(config_path)
    assert cfg.participant == "ved3"
    assert cfg.bundle.source == str(config_path.parent / "bundle.json")
    assert cfg.journal.synchronous == "NORMAL"


def test_overrides(config_path: Path) -> None:
    cfg = load_config(config_path, {"listen.port": 1234, "upstream": "http://h:1/", "admin.port": None})
    assert cfg.listen.port == 1234 and cfg.upstream == "http://h:1"


def edit(path: Path, change: dict[str, object]) -> Path:
    data = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node[p]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("change", "field"), [
    ({"listne": {"port": 1}}, "listne"),
    ({"listen.port": 70000}, "listen.port"),
    ({"upstream": "ftp://x"}, "upstream"),
    ({"bundle.threshold": 0}, "bundle.threshold"),
    ({"bundle.trusted_keys": []}, "bundle"),
    ({"bundle.root": "root.json"}, "bundle"),  # both trusted_keys and a TUF root
    ({"bundle.trusted_keys": ..., "bundle.threshold": ..., "bundle.root": "root.json"}, "bundle"),  # file source
    ({"bundle.trusted_keys": ..., "bundle.root": "root.json", "bundle.source": "http://127.0.0.1:1/repo"},
     "bundle"),  # threshold is format 1's
    ({"journal.synchronous": "OFF"}, "journal.synchronous"),
    ({"participant": ...}, "participant"),
], ids=["typo", "port-range", "upstream-scheme", "threshold", "no-keys", "keys-and-root", "root-file-source",
        "root-threshold", "synchronous", "missing"])
def test_errors_name_file_and_field(config_path: Path, change: dict[str, object], field: str) -> None:
    edit(config_path, change)
    with pytest.raises(ConfigError) as e:
        load_config(config_path)
    assert re.search(rf"{re.escape(str(config_path))}:\d+:\d+: {re.escape(field)}", str(e.value))


def test_errors_point_at_the_line(config_path: Path) -> None:
    text = config_path.read_text()
    line = text.splitlines().index("participant: ved3") + 2
    config_path.write_text(text.replace("participant: ved3", "participant: ved3\nparticipant: ved1"))
    with pytest.raises(ConfigError, match=rf":{line}:1: YAML-duplicate-key duplicate key 'participant'"):
        load_config(config_path)
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t.strip().startswith("synchronous:"))
    config_path.write_text(text.replace("synchronous: NORMAL", "synchronous: OFF"))
    with pytest.raises(ConfigError, match=rf":{line}:\d+: journal.synchronous"):
        load_config(config_path)


@pytest.mark.parametrize("text", ["- a list\n", "a: [unclosed\n"], ids=["not-mapping", "bad-yaml"])
def test_not_a_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_a_postgres_journal(config_path: Path) -> None:
    edit(config_path, {"journal.path": ..., "journal.synchronous": ..., "journal.backend": "postgres",
                       "journal.dsn": "postgresql://reestr@db/journal", "journal.chain": "ved3-a"})
    cfg = load_config(config_path)
    assert (cfg.journal.backend, cfg.journal.dsn, cfg.journal.chain, cfg.journal.path) == (
        "postgres", "postgresql://reestr@db/journal", "ved3-a", None)


@pytest.mark.parametrize("change", [
    pytest.param({"journal.backend": "postgres"}, id="postgres-without-dsn"),
    pytest.param({"journal.backend": "postgres", "journal.dsn": "postgresql://db/j", "journal.synchronous": ...},
                 id="postgres-with-a-path"),
    pytest.param({"journal.backend": "postgres", "journal.dsn": "postgresql://db/j", "journal.path": ...},
                 id="postgres-with-synchronous"),
    pytest.param({"journal.dsn": "postgresql://db/j"}, id="sqlite-with-a-dsn"),
    pytest.param({"journal.path": ...}, id="sqlite-without-a-path"),
    pytest.param({"journal.backend": "mysql"}, id="unknown-backend"),
    pytest.param({"journal.backend": "postgres", "journal.dsn": "postgresql://db/j", "journal.path": ...,
                  "journal.synchronous": ..., "journal.chain": "a b"}, id="chain-name"),
])
def test_journal_backend_fields_must_fit_the_backend(config_path: Path, change: dict[str, object]) -> None:
    edit(config_path, change)
    with pytest.raises(ConfigError, match=r"journal"):
        load_config(config_path)
