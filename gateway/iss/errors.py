"""The one exception type that carries an iss error code across the code base.

Everything that ends in an iss error answer raises :class:`IssError` with a code from
:data:`gateway.iss.codes.ERROR_CODES`; constructing one with an undocumented code is a
programming error, caught at once instead of surfacing as a code no client knows.
"""

from __future__ import annotations

from .codes import ERROR_CODES


class IssError(Exception):
    """An iss API error: ``code`` is a documented error code, ``message`` is for humans."""

    def __init__(self, code: str, message: str | None = None, request_id: str | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"undocumented iss error code {code!r}")
        self.code = code
        self.message = message or ERROR_CODES[code]
        self.request_id = request_id
        super().__init__(f"{code}: {self.message}")

    @property
    def retryable(self) -> bool:
        """Whether repeating the same request later may succeed (rate limits, server trouble)."""
        return self.code.startswith(("RequestLimitExceeded", "InternalError", "ServiceUnavailable")) or (
            self.code == "FailedOperation.RequestTimeout"
        )

    def to_dict(self) -> dict[str, str]:
        """The ``Response.Error`` object of the wire envelope."""
        return {"Code": self.code, "Message": self.message}


class IssTransportError(Exception):
    """The request never produced an iss answer: connection refused, timeout, non-JSON body, 5xx."""
