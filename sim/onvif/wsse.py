"""WS-Security UsernameToken verification, the way camera firmwares check it.

PasswordDigest = Base64(SHA1(nonce + created + password)). ``Created`` is compared to the
device's own clock (including its skew), which is why clients measure the device clock first
and sign with the offset. As in gSOAP's WS-Security plugin, a nonce may be used once within the
freshness window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from datetime import datetime
from enum import StrEnum

from lxml import etree

from .soap import NS_WSSE

_LOGGER = logging.getLogger(__name__)

_PASSWORD_DIGEST = "#PasswordDigest"
_PASSWORD_TEXT = "#PasswordText"
_NONCE_CACHE_PRUNE_SIZE = 512


class AuthRejection(StrEnum):
    """Why a request's credentials were refused; counted per device for tests."""

    MISSING_TOKEN = "missing_token"
    UNKNOWN_USER = "unknown_user"
    BAD_PASSWORD = "bad_password"
    MALFORMED_TOKEN = "malformed_token"
    STALE_CREATED = "stale_created"
    REPLAYED_NONCE = "replayed_nonce"
    TEXT_REFUSED = "text_refused"
    DIGEST_REFUSED = "digest_refused"


class WsseRejected(Exception):
    """The UsernameToken did not authenticate the request."""

    def __init__(self, reason: AuthRejection) -> None:
        super().__init__(reason.value)
        self.reason = reason


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA1(nonce + created + password)) as the UsernameToken profile defines it."""
    digest = hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def _parse_created(text: str) -> float:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        raise ValueError("Created lacks a time zone")
    return moment.timestamp()


class UsernameTokenVerifier:
    """Checks the UsernameToken of each request against one device's account and clock."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        digest_only: bool,
        clock_tolerance_s: float,
        text_only: bool = False,
    ) -> None:
        self._username = username
        self._password = password
        self._digest_only = digest_only
        self._text_only = text_only
        self._tolerance_s = clock_tolerance_s
        self._seen_nonces: dict[str, float] = {}

    def verify(self, header: etree._Element | None, device_now: float) -> None:
        """Raise ``WsseRejected`` unless the header authenticates the device's user."""
        token = None if header is None else header.find(f"{{{NS_WSSE}}}Security/{{{NS_WSSE}}}UsernameToken")
        if token is None:
            raise WsseRejected(AuthRejection.MISSING_TOKEN)
        username = (token.findtext(f"{{{NS_WSSE}}}Username") or "").strip()
        password = token.find(f"{{{NS_WSSE}}}Password")
        if password is None:
            raise WsseRejected(AuthRejection.MALFORMED_TOKEN)
        if not hmac.compare_digest(username.encode("utf-8"), self._username.encode("utf-8")):
            raise WsseRejected(AuthRejection.UNKNOWN_USER)
        password_type = password.get("Type", _PASSWORD_TEXT)
        if password_type.endswith(_PASSWORD_DIGEST):
            self._verify_digest(token, (password.text or "").strip(), device_now)
        elif password_type.endswith(_PASSWORD_TEXT):
            self._verify_text(password.text or "")
        else:
            raise WsseRejected(AuthRejection.MALFORMED_TOKEN)

    def _verify_text(self, given: str) -> None:
        if self._digest_only:
            raise WsseRejected(AuthRejection.TEXT_REFUSED)
        if not hmac.compare_digest(given.encode("utf-8"), self._password.encode("utf-8")):
            raise WsseRejected(AuthRejection.BAD_PASSWORD)

    def _verify_digest(self, token: etree._Element, given: str, device_now: float) -> None:
        if self._text_only:
            raise WsseRejected(AuthRejection.DIGEST_REFUSED)
        nonce_text = (token.findtext(f"{{{NS_WSSE}}}Nonce") or "").strip()
        created_text = (token.findtext("{*}Created") or "").strip()
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            created = _parse_created(created_text)
        except (binascii.Error, ValueError):
            raise WsseRejected(AuthRejection.MALFORMED_TOKEN) from None
        if not nonce:
            raise WsseRejected(AuthRejection.MALFORMED_TOKEN)
        expected = password_digest(nonce, created_text, self._password)
        if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")):
            raise WsseRejected(AuthRejection.BAD_PASSWORD)
        if abs(device_now - created) > self._tolerance_s:
            _LOGGER.debug("UsernameToken Created is %.0f s away from the device clock", created - device_now)
            raise WsseRejected(AuthRejection.STALE_CREATED)
        self._remember_nonce(nonce_text, created, device_now)

    def _remember_nonce(self, nonce_text: str, created: float, device_now: float) -> None:
        if len(self._seen_nonces) > _NONCE_CACHE_PRUNE_SIZE:
            self._seen_nonces = {n: t for n, t in self._seen_nonces.items() if t >= device_now}
        expiry = self._seen_nonces.get(nonce_text)
        if expiry is not None and expiry >= device_now:
            raise WsseRejected(AuthRejection.REPLAYED_NONCE)
        self._seen_nonces[nonce_text] = created + self._tolerance_s
