"""HTTP Digest (RFC 7616, MD5, qop=auth) and Basic authentication for the snapshot endpoint.

Cameras protect snapshot URLs with plain HTTP authentication, not WS-Security; which schemes they
offer varies, so the mode is per device. Nonces are stateless (issue time plus an HMAC under a
per-server secret) and expire after ``nonce_lifetime_s``; an expired but genuine nonce earns a
``stale=true`` challenge so a client retries without prompting, as RFC 7616 section 3.3 intends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .model import SnapshotAuthMode

_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class HttpAuthOutcome(Enum):
    """Result of checking an Authorization header."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    STALE_NONCE = "stale_nonce"


def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def parse_auth_params(text: str) -> dict[str, str]:
    """Key/value pairs of a Digest header; quoted values are unescaped."""
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(text):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
    return params


@dataclass(frozen=True)
class DigestCredentials:
    """The account an HTTP request must prove it holds."""

    username: str
    password: str
    realm: str


class HttpAuthenticator:
    """Issues challenges and checks Authorization headers for one device."""

    def __init__(
        self,
        credentials: DigestCredentials,
        mode: SnapshotAuthMode,
        wall_clock: Callable[[], float],
        nonce_lifetime_s: float = 300.0,
    ) -> None:
        self._credentials = credentials
        self._mode = mode
        self._wall_clock = wall_clock
        self._nonce_lifetime_s = nonce_lifetime_s
        self._secret = os.urandom(16)

    def challenges(self, stale: bool = False) -> list[str]:
        """WWW-Authenticate values, Digest first (clients such as aiohttp read only the first)."""
        values: list[str] = []
        if self._mode in (SnapshotAuthMode.DIGEST, SnapshotAuthMode.BOTH):
            stale_part = ", stale=true" if stale else ""
            values.append(
                f'Digest realm="{self._credentials.realm}", qop="auth", algorithm=MD5, '
                f'nonce="{self._new_nonce()}", opaque="{self._opaque()}"{stale_part}'
            )
        if self._mode in (SnapshotAuthMode.BASIC, SnapshotAuthMode.BOTH):
            values.append(f'Basic realm="{self._credentials.realm}"')
        return values

    def check(self, method: str, request_target: str, authorization: str | None) -> HttpAuthOutcome:
        """Whether the Authorization header proves the device's credentials for this request."""
        if not authorization:
            return HttpAuthOutcome.REJECTED
        scheme, _, rest = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self._mode in (SnapshotAuthMode.BASIC, SnapshotAuthMode.BOTH):
            return self._check_basic(rest.strip())
        if scheme == "digest" and self._mode in (SnapshotAuthMode.DIGEST, SnapshotAuthMode.BOTH):
            return self._check_digest(method, request_target, parse_auth_params(rest))
        return HttpAuthOutcome.REJECTED

    def _check_basic(self, encoded: str) -> HttpAuthOutcome:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return HttpAuthOutcome.REJECTED
        expected = f"{self._credentials.username}:{self._credentials.password}"
        if hmac.compare_digest(decoded.encode("utf-8"), expected.encode("utf-8")):
            return HttpAuthOutcome.ACCEPTED
        return HttpAuthOutcome.REJECTED

    def _check_digest(self, method: str, request_target: str, params: dict[str, str]) -> HttpAuthOutcome:
        creds = self._credentials
        required = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if any(name not in params for name in required):
            return HttpAuthOutcome.REJECTED
        if params.get("algorithm", "MD5").upper() != "MD5" or params["qop"] != "auth":
            return HttpAuthOutcome.REJECTED
        if params["username"] != creds.username or params["realm"] != creds.realm:
            return HttpAuthOutcome.REJECTED
        if params["uri"] != request_target:
            return HttpAuthOutcome.REJECTED
        ha1 = _md5_hex(f"{creds.username}:{creds.realm}:{creds.password}")
        ha2 = _md5_hex(f"{method}:{params['uri']}")
        expected = _md5_hex(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
        if not hmac.compare_digest(params["response"].lower().encode("utf-8"), expected.encode("ascii")):
            return HttpAuthOutcome.REJECTED
        return self._nonce_state(params["nonce"])

    def _new_nonce(self) -> str:
        issued = f"{int(self._wall_clock()):x}"
        return f"{issued}.{self._nonce_mac(issued)}"

    def _nonce_mac(self, issued: str) -> str:
        return hmac.new(self._secret, issued.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def _opaque(self) -> str:
        return hmac.new(self._secret, b"opaque", hashlib.sha256).hexdigest()[:16]

    def _nonce_state(self, nonce: str) -> HttpAuthOutcome:
        issued, _, mac = nonce.partition(".")
        if not hmac.compare_digest(mac.encode("utf-8"), self._nonce_mac(issued).encode("ascii")):
            return HttpAuthOutcome.REJECTED
        try:
            age = self._wall_clock() - int(issued, 16)
        except ValueError:
            return HttpAuthOutcome.REJECTED
        if age > self._nonce_lifetime_s:
            return HttpAuthOutcome.STALE_NONCE
        return HttpAuthOutcome.ACCEPTED
