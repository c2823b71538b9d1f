"""The iss wire protocol: TC3-HMAC-SHA256 signing, the JSON envelope, error codes, a client."""

from .errors import IssError
from .signing import SignedRequest, Tc3Signer

API_VERSION = "2023-05-17"
SERVICE = "iss"

__all__ = ["API_VERSION", "SERVICE", "IssError", "SignedRequest", "Tc3Signer"]
