"""The iss JSON envelope: ``{"Response": {..., "RequestId": ...}}`` for success and for errors.

Servers (the local API, the relay, the cloud emulator) answer through these helpers so every
answer has the same shape and the one Content-Type the official SDK inspects
(``application/json`` exactly: with a charset suffix the SDK silently ignores ``Response.Error``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .errors import IssError

CONTENT_TYPE = "application/json"


def new_request_id() -> str:
    """A fresh RequestId, UUID4 like the cloud's."""
    return str(uuid.uuid4())


def success(result: dict[str, Any] | None, request_id: str) -> dict[str, Any]:
    """Wrap an action's output fields."""
    response: dict[str, Any] = dict(result or {})
    response["RequestId"] = request_id
    return {"Response": response}


def failure(error: IssError, request_id: str) -> dict[str, Any]:
    """Wrap an error."""
    return {"Response": {"Error": error.to_dict(), "RequestId": request_id}}


def dumps(envelope: dict[str, Any]) -> bytes:
    """Serialise compactly with UTF-8 kept readable, as the cloud does."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_response(body: bytes) -> dict[str, Any]:
    """Return ``Response`` of a success envelope or raise the :class:`IssError` it carries.

    An error code the table does not know (the cloud may add some) becomes ``FailedOperation``
    (not retried) with the original code kept in the message, so callers still see a typed error.
    """
    document = json.loads(body)
    response: dict[str, Any] = document["Response"]
    error = response.get("Error")
    if error:
        code = str(error.get("Code", "InternalError"))
        message = str(error.get("Message", ""))
        try:
            raise IssError(code, message, response.get("RequestId"))
        except ValueError:
            raise IssError("FailedOperation", f"{code}: {message}", response.get("RequestId")) from None
    return response
