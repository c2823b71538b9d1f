"""TC3-HMAC-SHA256 request signing and verification, as spec README section 4 describes it.

One class does both directions so the local API verifies with exactly the code the client signs
with, and a test pins the client side byte for byte to the official Tencent SDK.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import IssError

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW_SECONDS = 300

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[A-Za-z0-9_-]+)/tc3_request, SignedHeaders=(?P<signed>[a-z0-9;_-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(
    method: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload: bytes,
    query: str = "",
    *,
    lower_values: bool = True,
) -> str:
    """Build the step-1 canonical request; ``headers`` keys are matched case-insensitively.

    The spec lower-cases header values; the official SDK signs them as sent. Both agree for
    the lower-case values clients send, and the verifier accepts either form.
    """
    lower = {k.lower(): v for k, v in headers.items()}

    def value(name: str) -> str:
        raw = lower.get(name, "").strip()
        return raw.lower() if lower_values else raw

    canonical_headers = "".join(f"{name}:{value(name)}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            "/",
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        ]
    )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """Headers and body ready to send; the body is exactly the bytes that were signed."""

    headers: dict[str, str]
    body: bytes


class Tc3Signer:
    """Signs requests to, and verifies requests from, one iss endpoint with one key pair."""

    def __init__(self, secret_id: str, secret_key: str, service: str = "iss") -> None:
        self.secret_id = secret_id
        self._secret_key = secret_key
        self.service = service

    def __repr__(self) -> str:  # never show the key
        return f"Tc3Signer(secret_id={self.secret_id!r}, service={self.service!r})"

    def signature(self, string_to_sign: str, date: str) -> str:
        """Step 3: derive the signing key for ``date`` and sign."""
        secret_date = _hmac(("TC3" + self._secret_key).encode("utf-8"), date)
        secret_service = _hmac(secret_date, self.service)
        secret_signing = _hmac(secret_service, "tc3_request")
        return hmac.new(secret_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    def string_to_sign(self, timestamp: int, canonical: str) -> str:
        """Step 2."""
        scope = f"{_utc_date(timestamp)}/{self.service}/tc3_request"
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"

    def sign(
        self,
        *,
        action: str,
        body: bytes,
        host: str,
        timestamp: int,
        version: str,
        region: str | None = None,
        content_type: str = "application/json",
        token: str | None = None,
        language: str | None = None,
        method: str = "POST",
    ) -> SignedRequest:
        """Return the headers for a ``POST /`` JSON request, signed over content-type and host.

        ``method="GET"`` signs an empty payload, as the relay's WebSocket upgrade needs.
        """
        headers = {"Content-Type": content_type, "Host": host}
        signed = ["content-type", "host"]
        canonical = canonical_request(method, headers, signed, body if method.upper() != "GET" else b"")
        date = _utc_date(timestamp)
        signature = self.signature(self.string_to_sign(timestamp, canonical), date)
        headers.update(
            {
                "X-TC-Action": action,
                "X-TC-Timestamp": str(timestamp),
                "X-TC-Version": version,
                "Authorization": (
                    f"{ALGORITHM} Credential={self.secret_id}/{date}/{self.service}/tc3_request, "
                    f"SignedHeaders={';'.join(signed)}, Signature={signature}"
                ),
            }
        )
        if region:
            headers["X-TC-Region"] = region
        if token:
            headers["X-TC-Token"] = token
        if language:
            headers["X-TC-Language"] = language
        return SignedRequest(headers=headers, body=body)


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    """Who signed a request that passed verification, and the signature (for replay checks)."""

    secret_id: str
    signature: str
    timestamp: int


def verify_request(
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes,
    query: str,
    keys: Mapping[str, str],
    now: float,
    expected_host: str | None = None,
    service: str = "iss",
) -> VerifiedCaller:
    """Check a request's TC3 signature; raise :class:`IssError` with the documented AuthFailure code.

    ``headers`` must be case-insensitive (aiohttp's ``CIMultiDictProxy`` is). ``keys`` maps
    SecretId to SecretKey. ``expected_host``, when set, must equal the signed Host header, so a
    signature made for another endpoint is refused.
    """
    authorization = headers.get("Authorization")
    if not authorization:
        raise IssError("AuthFailure.InvalidAuthorization", "The Authorization header is missing.")
    match = _AUTH_RE.match(authorization.strip())
    if match is None:
        raise IssError("AuthFailure.InvalidAuthorization", "The Authorization header is malformed.")
    raw_timestamp = headers.get("X-TC-Timestamp", "")
    if not raw_timestamp.isdigit():
        raise IssError("MissingParameter", "The X-TC-Timestamp header is missing or not an integer.")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > MAX_SKEW_SECONDS:
        raise IssError("AuthFailure.SignatureExpire")
    if match["service"] != service or match["date"] != _utc_date(timestamp):
        raise IssError("AuthFailure.SignatureFailure", "The credential scope does not match the request.")
    signed = match["signed"].split(";")
    if "content-type" not in signed or "host" not in signed or signed != sorted(signed):
        raise IssError("AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host.")
    secret_key = keys.get(match["secret_id"])
    if secret_key is None:
        raise IssError("AuthFailure.SecretIdNotFound")
    if expected_host is not None and headers.get("Host", "").strip().lower() != expected_host.lower():
        raise IssError("AuthFailure.SignatureFailure", "The request was signed for another host.")
    signer = Tc3Signer(match["secret_id"], secret_key, service)
    payload = body if method.upper() != "GET" else b""
    for lower_values in (True, False):
        canonical = canonical_request(method, headers, signed, payload, query, lower_values=lower_values)
        expected = signer.signature(signer.string_to_sign(timestamp, canonical), match["date"])
        if hmac.compare_digest(expected, match["signature"]):
            break
    else:
        raise IssError("AuthFailure.SignatureFailure")
    return VerifiedCaller(match["secret_id"], match["signature"], timestamp)
