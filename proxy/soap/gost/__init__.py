"""GOST cryptography for SMEV message signatures (docs/sidecar.md, "Signed SOAP messages").

- `curves`: GOST R 34.10-2001 / 2012 (256, 512) verify and sign, Jacobian coordinates.
- `hashes`: Streebog-256/512 (GOST R 34.11-2012) and GOST R 34.11-94, by algorithm URI.
- `certs`: X.509 certificates with GOST keys (pyasn1: `cryptography` cannot parse them).
- `transform`: the SMEV 3 transform `urn://smev-gov-ru/xmldsig/transform`.
"""
