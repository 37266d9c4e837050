"""The hash chain and its signed checkpoints: what every backend and every archive agrees on.

`hash = SHA-256(prev_hash || record text)`, both as UTF-8 text (prev_hash as 64 lowercase hex
characters); record 1 of a chain links to `GENESIS_HASH`. A checkpoint is an Ed25519 signature
over `checkpoint_payload`, which names the sealed head. A store that holds several chains (one
PostgreSQL database shared by several sidecars) names each chain; the chain's name is then part
of what is signed, so a checkpoint cannot be moved to another chain. A single-chain store (a
SQLite file) has the chain `None` and signs exactly what format 1 signed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from compiler.trust import canonical_json, keyid, sha256_hex

GENESIS_HASH = "0" * 64
CHECKPOINT_TYPE = "reestr-journal-checkpoint"
CHAIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
"""A chain's name: also a file name of its archives, so no separators, no leading dot."""


def chain_hash(prev_hash: str, text: str) -> str:
    """hash = SHA-256(prev_hash || canonical JSON), both as UTF-8 text."""
    return sha256_hex((prev_hash + text).encode("utf-8"))


def checkpoint_payload(checkpoint_id: int, upto_record_id: int, head_hash: str, time: str,
                       keyid: str, chain: str | None = None) -> bytes:
    """The bytes a checkpoint signature covers: a typed object naming the sealed chain head."""
    data: dict[str, object] = {"type": CHECKPOINT_TYPE, "id": checkpoint_id, "upto_record_id": upto_record_id,
                               "head_hash": head_hash, "time": time, "keyid": keyid}
    if chain is not None:
        data["chain"] = chain
    return canonical_json(data)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed seal over a chain's head: records 1..`upto` of `chain` hash to `head`."""

    id: int
    upto: int
    head: str
    time: str
    keyid: str
    signature: str
    chain: str | None = None

    @classmethod
    def sign(cls, key: Ed25519PrivateKey, checkpoint_id: int, upto: int, head: str, time: str,
             chain: str | None) -> Checkpoint:
        kid = keyid(key.public_key())
        signature = key.sign(checkpoint_payload(checkpoint_id, upto, head, time, kid, chain))
        return cls(checkpoint_id, upto, head, time, kid, signature.hex(), chain)

    def signed_by(self, public_key: Ed25519PublicKey) -> bool:
        """True if the signature is `public_key`'s over this checkpoint's payload."""
        try:
            public_key.verify(bytes.fromhex(self.signature),
                              checkpoint_payload(self.id, self.upto, self.head, self.time, self.keyid, self.chain))
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True
