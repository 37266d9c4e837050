"""The message layer's one error root: a message reestr will not read is `malformed-request`."""

from __future__ import annotations

from proxy.errors import SidecarError


class MessageError(SidecarError):
    """A SOAP message that cannot be read unambiguously; `detail` says why (logs and tests only:
    the caller gets the stable code, never an echo of its bytes)."""

    code = "malformed-request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SignatureError(SidecarError):
    """Root of the signature layer's errors (GOST certificates, keys, signers); `code` is stable."""

    code = "signature-error"
