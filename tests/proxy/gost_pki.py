"""GOST test keys and certificates made by OpenSSL's GOST engine (Debian libengine-gost-openssl,
installed by `.ci/run` and `make test`): an independent implementation for the cross-checks."""

from __future__ import annotations

import base64
import glob
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ENGINE = sorted(glob.glob("/usr/lib/*/engines-3/gost.so"))


@dataclass(frozen=True)
class GostIdentity:
    key: Path
    cert_pem: Path
    der: bytes


@dataclass(frozen=True)
class GostPki:
    dir: Path
    env: dict[str, str]  # OPENSSL_CONF for the engine

    def openssl(self, *args: str, data: bytes | None = None) -> bytes:
        done = subprocess.run(["openssl", *args], input=data, capture_output=True, env=self.env, check=False)
        if done.returncode != 0:
            raise AssertionError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def issue(self, name: str, algorithm: str = "gost2012_256", paramset: str = "A",
              days: int = 30) -> GostIdentity:
        key, cert = self.dir / f"{name}.key", self.dir / f"{name}.pem"
        self.openssl("genpkey", "-engine", "gost", "-algorithm", algorithm, "-pkeyopt", f"paramset:{paramset}",
                     "-out", str(key))
        md = "-md_gost12_512" if algorithm.endswith("512") else "-md_gost12_256"
        self.openssl("req", "-x509", "-engine", "gost", "-key", str(key), "-subj", f"/CN={name}/O=reestr test",
                     "-days", str(days), md, "-out", str(cert))
        pem = cert.read_text()
        der = base64.b64decode("".join(line for line in pem.splitlines() if "-----" not in line))
        return GostIdentity(key=key, cert_pem=cert, der=der)


@pytest.fixture(scope="session")
def gost_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GostPki]:
    if not ENGINE:
        pytest.skip("OpenSSL's GOST engine is not installed (Debian: libengine-gost-openssl)")
    d = tmp_path_factory.mktemp("gost-pki")
    conf = d / "openssl.cnf"
    conf.write_text("openssl_conf = openssl_def\n[openssl_def]\nengines = engine_section\n"
                    "[engine_section]\ngost = gost_section\n[gost_section]\nengine_id = gost\n"
                    f"dynamic_path = {ENGINE[0]}\ndefault_algorithms = ALL\n")
    yield GostPki(dir=d, env={**os.environ, "OPENSSL_CONF": str(conf)})
