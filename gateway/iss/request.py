"""Reading an incoming iss call: version, action and JSON parameters, with the cloud's codes.

Shared by every server that speaks the protocol (the local API, the cloud emulator), so a
malformed call gets the same answer from each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import API_VERSION
from .errors import IssError


def version_and_action(headers: Mapping[str, str]) -> str:
    """Check ``X-TC-Version`` and return ``X-TC-Action`` (in the cloud's order of checks)."""
    version = headers.get("X-TC-Version")
    if not version:
        raise IssError("MissingParameter", "The X-TC-Version header is missing.")
    if version != API_VERSION:
        raise IssError("NoSuchVersion", f"Version {version!r} does not exist; use {API_VERSION}.")
    action = headers.get("X-TC-Action")
    if not action:
        raise IssError("MissingParameter", "The X-TC-Action header is missing.")
    return action


def parse_params(body: bytes) -> dict[str, Any]:
    """The call's parameters: a JSON object (an empty body means none)."""
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IssError("InvalidParameter.InvalidBodyFormat", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise IssError("InvalidParameter.InvalidBodyFormat", "The request body must be a JSON object.")
    return params
