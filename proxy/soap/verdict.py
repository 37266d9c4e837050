"""The outcome of a message signature check, shared by every profile (proxy.soap.signatures).

A `SignatureResult` says valid or why not with a stable status (the sidecar's reason code is
`signature-<status>`), and — when the signature could be read that far — its algorithm, the
signer's certificate (SHA-256 fingerprint, subject) and what it covers: the sidecar journals
them, `reestr-sidecar verify-message` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["valid", "invalid", "absent", "unsupported", "wrong-signer", "certificate-expired"]


@dataclass(frozen=True)
class SignatureResult:
    """One signature's check; `detail` says why, for logs and tests (not for the caller)."""

    status: Status
    detail: str
    algorithm: str | None = None   # the SignatureMethod URI
    signer: str | None = None      # SHA-256 of the signing certificate's DER, lowercase hex
    subject: str | None = None     # the signing certificate's subject
    holder: str | None = None      # the element that holds the signature (local name)
    covers: tuple[str, ...] = ()   # local names (and ids) of the elements its references sign
    value_sha256: str | None = None  # SHA-256 of the SignatureValue bytes: one signing act (replay key)

    @property
    def reason(self) -> str | None:
        """The sidecar's reason code for a refusal (`signature-absent` ...), None when valid."""
        return None if self.status == "valid" else f"signature-{self.status}"

    @property
    def journal(self) -> str:
        """The journal's `signature_check`: status, then algorithm and signer when known.

        `valid`, `absent` ... alone when nothing more is known (format 2 records), else
        `<status> <algorithm URI> <signer sha256>` (docs/sidecar.md, "Signed SOAP messages").
        """
        if self.algorithm is None:
            return self.status
        return f"{self.status} {self.algorithm} {self.signer or '-'}"


class Refused(Exception):
    """Raised inside a check to stop at the first problem; carries the result."""

    def __init__(self, status: Status, detail: str, **known: str | None) -> None:
        super().__init__(detail)
        self.result = SignatureResult(status, detail, **known)  # type: ignore[arg-type]
