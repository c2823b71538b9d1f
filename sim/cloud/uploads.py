"""``PUT /_emulator/uploads/{channel}/{name}``: where the gateway's recording uploads land.

The real platform's upload target is outside the iss API, so the emulator offers a plain HTTP
receiver for tests and local runs: the body is stored (whole, or not at all) under
``<state_dir>/uploads/<channel>/<name>`` and the receipt counted, so a test can see each file
arrived once and byte for byte. Injected faults for the action ``Upload`` (or ``"*"``) apply:
``http_status`` answers that status, ``error`` answers 500, ``drop`` closes the connection, a
``delay`` waits first; in every failing case nothing is stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from aiohttp import web

from .state import EMULATOR_STATE

logger = logging.getLogger(__name__)

UPLOAD_FAULT_ACTION: Final = "Upload"
UPLOADS_PATH: Final = "/_emulator/uploads"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_CHUNK_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedUpload:
    """One stored upload: ``channel/name``, its size, and how many times it was PUT."""

    name: str
    bytes: int
    times: int


class UploadInbox:
    """The received files (on disk) and the receipt counts (memory, like the call log)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._received: dict[str, ReceivedUpload] = {}

    def uploads(self) -> list[ReceivedUpload]:
        """Every upload received so far, by name."""
        return [self._received[name] for name in sorted(self._received)]

    def path_of(self, name: str) -> Path:
        """Where ``channel/name`` is stored."""
        return self.directory / name

    async def receive(self, channel: str, name: str, request: web.Request) -> ReceivedUpload:
        """Store the request body as ``channel/name``, replacing an earlier copy atomically."""
        target = self.directory / channel / name
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        handle, temporary = await asyncio.to_thread(tempfile.mkstemp, dir=target.parent, prefix=".part-")
        size = 0
        try:
            with os.fdopen(handle, "wb") as sink:
                async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
                    await asyncio.to_thread(_write, sink, chunk)
                    size += len(chunk)
            await asyncio.to_thread(os.replace, temporary, target)
        except BaseException:
            await asyncio.to_thread(_remove, Path(temporary))
            raise
        key = f"{channel}/{name}"
        previous = self._received.get(key)
        receipt = ReceivedUpload(key, size, (previous.times if previous else 0) + 1)
        self._received[key] = receipt
        return receipt


def _write(sink: BinaryIO, chunk: bytes) -> None:
    sink.write(chunk)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


UPLOAD_INBOX = web.AppKey("upload_inbox", UploadInbox)


async def put_upload(request: web.Request) -> web.StreamResponse:
    """Store one uploaded file, unless a fault says otherwise."""
    channel, name = request.match_info["channel"], request.match_info["name"]
    if not (_NAME.fullmatch(channel) and _NAME.fullmatch(name)):
        return web.json_response({"error": "channel and name must be plain file names"}, status=400)
    fault = request.app[EMULATOR_STATE].faults.take(UPLOAD_FAULT_ACTION)
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable()
        if fault.http_status is not None or fault.error is not None:
            logger.info("upload %s/%s refused by an injected fault", channel, name)
            return web.json_response({"error": "injected fault"}, status=fault.http_status or 500)
    receipt = await request.app[UPLOAD_INBOX].receive(channel, name, request)
    logger.debug("upload %s stored (%d bytes, %d times)", receipt.name, receipt.bytes, receipt.times)
    return web.json_response({"Name": receipt.name, "Bytes": receipt.bytes}, status=201)


def add_upload_routes(app: web.Application, inbox: UploadInbox) -> None:
    """Register the upload receiver on ``app`` (which must carry the emulator state)."""
    app[UPLOAD_INBOX] = inbox
    app.router.add_route("PUT", UPLOADS_PATH + "/{channel}/{name}", put_upload)
