"""The sidecar's configuration: one YAML file, loaded into a strict pydantic model.

Why a model: a typo in a config key must not silently drop a setting (unknown keys are errors),
and every problem is reported with the file and the field before anything listens.

Relative paths are resolved against the directory of the config file. Format::

    participant: ved3                 # own participant id = the audience of our bundle
    listen: {host: 0.0.0.0, port: 8443}          # inbound mTLS port (agency's public sidecar)
    admin: {host: 127.0.0.1, port: 9100}         # /healthz /readyz /metrics
    upstream: http://127.0.0.1:8080              # the agency system behind the sidecar
    tls:
      server_bundle: tls/server.pem   # private key + leaf + chain, PEM, presented to callers
    bundle:
      source: dist/bundles/ved3.json  # a file path or an http(s) URL (polled with ETag)
      poll_seconds: 30
      trusted_keys: [keys/operator.pub]          # Ed25519 public keys (PEM) of the operator
      threshold: 1
      # or, a TUF repository (docs/bundle-format.md): source is its URL, root its trusted root.json
      # source: https://bundles.example/repo
      # root: keys/root.json          # bootstrap only: newer roots are followed and kept in state_dir
      max_bytes: 33554432             # a larger bundle is refused before it is read
      # expiry_warning_seconds: 64800 # warn this long before expiry (default: a quarter of its lifetime)
    state_dir: state                  # last good bundle, highest serial seen, last refusal
    journal:
      backend: sqlite                 # sqlite (default) | postgres
      path: state/journal.sqlite      # sqlite: the file
      synchronous: FULL               # sqlite: FULL | NORMAL
      # dsn: "postgresql://reestr@db.example/journal"   # postgres: the database (password via
      # chain: ved3-a                 # PGPASSWORD or ~/.pgpass); chain: this sidecar's chain
      signing_key: keys/sidecar.key   # Ed25519 private key (PEM) signing checkpoints
    limits:
      max_body_bytes: 1048576         # larger request bodies get 413
      max_target_bytes: 8192          # longer request targets get 414
      max_header_bytes: 16384         # larger header blocks (or more than max_headers) get 431
      max_headers: 100
      header_timeout_seconds: 10      # a new connection must send a complete request head by then
      idle_timeout_seconds: 60        # a kept-alive connection, or a request body, at most this idle
    payloads:
      responses: record               # enforce | record | off: response payloads vs their schema
    signatures:
      replay_window_seconds: 900      # a signed message id is accepted once in this window (R11)
      signer:                         # optional: the ЭП-ОВ that signs smev3/smev2 requests and answers
        certificate: keys/ep-ov.pem   # the registered signing certificate (PEM)
        key_file: keys/ep-ov.key      # GOST R 34.10-2012 key (PEM PKCS #8), or instead:
        # command: [/opt/csp/sign, --container, ep-ov]   # SignedInfo on stdin, base64 signature out
    workers: 1                        # sidecar processes sharing the ports (proxy.supervisor)
    drain_seconds: 30                 # on SIGTERM: how long in-flight calls may take to finish
    health:                           # optional: probe the upstream per service (proxy.health)
      interval: 10                    # seconds between rounds
      timeout: 2                      # per probe
      services:
        SID0003001: {method: GET, path: /health}   # an HTTP request: up when the status is < 500
        SID0003002: {tcp: true}                    # or a TCP connect to the upstream
    outbound:                         # optional: consumer side (DESIGN §7)
      listen: {host: 127.0.0.1, port: 8088}
      client_bundle: tls/client.pem   # our key + certificate presented to providers
      provider_ca: tls/ca.pem         # CA that issued the providers' server certificates
      clients:                        # the agency's systems that may call out (mTLS, required)
        - {name: billing, certificate: tls/billing.crt}   # PEM, exactly one certificate
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from compiler.yamlsrc import Positions, load_bytes
from proxy.errors import ConfigError

_STRICT = ConfigDict(extra="forbid", frozen=True)
_SID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_WORKERS = 64


class Listen(BaseModel):
    """An address to bind."""

    model_config = _STRICT
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class TlsConfig(BaseModel):
    model_config = _STRICT
    server_bundle: Path


class BundleConfig(BaseModel):
    model_config = _STRICT
    source: str
    poll_seconds: float = Field(default=30.0, gt=0)
    # Format 1: the operator's Ed25519 public keys, `threshold` of them sign each bundle. Or, with
    # a TUF repository (docs/bundle-format.md): `root`, the trusted root.json it starts from, and
    # `source` the repository's URL. Exactly one of the two.
    trusted_keys: list[Path] = Field(default_factory=list)
    root: Path | None = None
    threshold: int = Field(default=1, ge=1)
    max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)  # larger bundles refused unread
    # Warn (/readyz body, log, metric) when the bundle in force expires within this many seconds;
    # default (None): a quarter of the bundle's own lifetime (issued_at → expires_at).
    expiry_warning_seconds: float | None = Field(default=None, gt=0)

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))

    @model_validator(mode="after")
    def _one_trust(self) -> BundleConfig:
        if (self.root is None) == (not self.trusted_keys):
            raise ValueError("give exactly one of `trusted_keys` (format 1) and `root` (a TUF repository)")
        if self.root is not None and not self.is_url:
            raise ValueError("with `root`, `source` is the TUF repository's http(s) URL")
        if self.root is not None and "threshold" in self.model_fields_set:
            raise ValueError("`threshold` is format 1's; with `root` the root metadata sets every threshold")
        return self


class JournalConfig(BaseModel):
    """`backend: sqlite` (a file at `path`, fsync per `synchronous`) or `backend: postgres` (a
    database at `dsn`, this sidecar writing its own `chain`, default the participant id; durable
    when PostgreSQL acknowledges the commit). `signing_key` signs the checkpoints either way."""

    model_config = _STRICT
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = None
    dsn: str | None = Field(default=None, min_length=1)
    chain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
    signing_key: Path
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    anchor_file: Path | None = None  # the latest checkpoint, kept outside the journal (anchor)

    @model_validator(mode="after")
    def _backend_fields(self) -> JournalConfig:
        if self.backend == "sqlite" and (self.path is None or self.dsn is not None or self.chain is not None):
            raise ValueError("backend sqlite takes `path` (and no `dsn` or `chain`)")
        if self.backend == "postgres" and (self.dsn is None or self.path is not None):
            raise ValueError("backend postgres takes `dsn` (and no `path`)")
        if self.backend == "postgres" and "synchronous" in self.model_fields_set:
            raise ValueError("`synchronous` is SQLite's; PostgreSQL commits are durable when acknowledged")
        return self


class Limits(BaseModel):
    """Caps that bound what a stranger costs (issue 10; docs/security.md)."""

    model_config = _STRICT
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_target_bytes: int = Field(default=8192, gt=0)  # longer request targets: 414
    max_header_bytes: int = Field(default=16384, gt=0)  # larger header blocks: 431
    max_headers: int = Field(default=100, gt=0)  # more header fields: 431
    header_timeout_seconds: float = Field(default=10.0, gt=0)  # connect -> first request head
    idle_timeout_seconds: float = Field(default=60.0, gt=0)  # between requests, and for a body


class PayloadConfig(BaseModel):
    """Payload schema checks: requests are always checked; responses by `responses`."""

    model_config = _STRICT
    responses: Literal["enforce", "record", "off"] = "record"


class SignerConfig(BaseModel):
    """Who signs this agency's SMEV 3 / SMEV 2 messages — outbound requests and the answers of its
    signed services (proxy.soap.signing, proxy.soap.authorship): a GOST key file, or an external
    command that reads SignedInfo on stdin and prints the base64 signature. `plain` messages are
    signed with the sidecar's TLS keys instead (no setting)."""

    model_config = _STRICT
    certificate: Path  # PEM, the signing certificate registered as spec.signing_certificates
    key_file: Path | None = None  # PEM PKCS #8 GOST R 34.10-2012 key
    command: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> SignerConfig:
        if (self.key_file is None) == (self.command is None):
            raise ValueError("give exactly one of key_file and command")
        return self


class SignaturesConfig(BaseModel):
    """Signed messages (R11): the replay window (proxy.replay) and the outbound signer."""

    model_config = _STRICT
    replay_window_seconds: float = Field(default=900.0, gt=0, le=7 * 86400)
    signer: SignerConfig | None = None


class HealthCheck(BaseModel):
    """One service's probe: an HTTP request to the upstream (`method` `path`; up when it answers
    with a status below 500 within the timeout), or `tcp: true` (up when a TCP connect succeeds)."""

    model_config = _STRICT
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    path: str = Field(default="/", min_length=1, max_length=2048, pattern=r"^/[\x21-\x7e]*$")
    tcp: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCheck:
        if self.tcp and self.model_fields_set & {"method", "path"}:
            raise ValueError("a tcp check takes no method or path")
        return self


class HealthConfig(BaseModel):
    """Service health (004 §7д): probes of the upstream per SID, off the request path."""

    model_config = _STRICT
    interval: float = Field(default=10.0, ge=0.05, le=3600)
    timeout: float = Field(default=2.0, gt=0, le=60)
    services: dict[str, HealthCheck] = Field(min_length=1, max_length=1000)

    @field_validator("services")
    @classmethod
    def _sids(cls, value: dict[str, HealthCheck]) -> dict[str, HealthCheck]:
        for sid in value:
            if not _SID_RE.fullmatch(sid):
                raise ValueError(f"{sid[:40]!r} is not a service id (letters, digits, . _ -; 1-64)")
        return value


class InternalClient(BaseModel):
    """An agency system allowed to call out through the sidecar, by its TLS client certificate."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=100)
    certificate: Path  # PEM, exactly one certificate


class OutboundConfig(BaseModel):
    model_config = _STRICT
    listen: Listen
    client_bundle: Path
    provider_ca: Path
    clients: list[InternalClient] = Field(min_length=1)  # who may use the outbound listener


class SidecarConfig(BaseModel):
    """Everything `reestr-sidecar run` needs; see the module docstring for the file format."""

    model_config = _STRICT
    participant: str = Field(min_length=1)
    listen: Listen
    admin: Listen
    upstream: str
    tls: TlsConfig
    bundle: BundleConfig
    state_dir: Path
    journal: JournalConfig
    limits: Limits = Limits()
    payloads: PayloadConfig = PayloadConfig()
    signatures: SignaturesConfig = SignaturesConfig()
    outbound: OutboundConfig | None = None
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)  # > 1: a supervisor and N processes
    drain_seconds: float = Field(default=30.0, gt=0, le=3600)
    health: HealthConfig | None = None

    @field_validator("upstream")
    @classmethod
    def _upstream_is_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


_PATH_FIELDS = (
    ("tls", "server_bundle"), ("state_dir",), ("journal", "path"), ("journal", "signing_key"),
    ("journal", "anchor_file"), ("signatures", "signer", "certificate"), ("signatures", "signer", "key_file"),
    ("outbound", "client_bundle"), ("outbound", "provider_ca"),
)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SidecarConfig:
    """Read, validate and resolve a config file; `overrides` maps dotted field names to values.

    Raises ConfigError naming the file and every bad field.
    """
    path = Path(path)
    try:
        loaded = load_bytes(path.read_bytes())  # the registry's loader: duplicate keys, no YAML 1.1 surprises
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    if loaded.problems:
        raise ConfigError("\n".join(f"{path}:{p.line}:{p.col}: {p.code} {p.message}" for p in loaded.problems))
    raw = loaded.data
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    _resolve_paths(raw, path.parent)
    try:
        return SidecarConfig.model_validate(raw)
    except ValidationError as e:
        lines = [f"{path}:{_where(loaded.positions, err['loc'])}: {_field(err['loc'])}: {err['msg']}"
                 for err in e.errors()]
        raise ConfigError("\n".join(lines)) from e


def _where(positions: Positions, loc: tuple[int | str, ...]) -> str:
    line, col = positions.of(tuple(loc))
    return f"{line}:{col}"


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make relative paths relative to the config file, not to the working directory."""
    for fields in _PATH_FIELDS:
        node: Any = raw
        for part in fields[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(fields[-1]), str):
            node[fields[-1]] = str(base / node[fields[-1]])
    outbound = raw.get("outbound")
    clients = outbound.get("clients") if isinstance(outbound, dict) else None
    for client in clients if isinstance(clients, list) else []:
        if isinstance(client, dict) and isinstance(client.get("certificate"), str):
            client["certificate"] = str(base / client["certificate"])
    bundle = raw.get("bundle")
    if isinstance(bundle, dict):
        if isinstance(bundle.get("root"), str):
            bundle["root"] = str(base / bundle["root"])
        keys = bundle.get("trusted_keys")
        if isinstance(keys, list):
            bundle["trusted_keys"] = [str(base / k) if isinstance(k, str) else k for k in keys]
        source = bundle.get("source")
        if isinstance(source, str) and not source.startswith(("http://", "https://")):
            bundle["source"] = str(base / source)
