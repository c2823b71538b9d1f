"""A loopback TCP relay that can freeze its connections: a camera that stalls without hanging up.

Stopping a mount on the simulated RTSP server disconnects its readers; a stalled camera instead
keeps the TCP connection open and sends nothing.  ``FreezableRelay`` sits between the recorder
and the RTSP server (RTSP over TCP is one connection, so the URLs inside the protocol do not
matter) and, once frozen, stops forwarding on the connections open at that moment - new ones
flow normally, like a camera whose session died but whose server accepts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

CHUNK = 65536


class RelayedConnection:
    """One client connection and its upstream, pumped both ways by two owned tasks."""

    def __init__(self) -> None:
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.closed_by_client = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []


class FreezableRelay:
    """``async with FreezableRelay(upstream_port) as relay``: listen on 127.0.0.1, port 0."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self.connections: list[RelayedConnection] = []
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def url(self, upstream_url: str) -> str:
        return upstream_url.replace(f":{self._upstream_port}/", f":{self.port}/")

    def freeze(self) -> None:
        """Stop forwarding on every connection open now; they stay open (data is discarded)."""
        for connection in self.connections:
            connection.flowing.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for connection in self.connections:
            for task in connection.tasks:
                task.cancel()
            for task in connection.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for writer in connection.writers:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        connection = RelayedConnection()
        self.connections.append(connection)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        connection.writers = [client_writer, upstream_writer]
        connection.tasks = [
            asyncio.create_task(self._pump(client_reader, upstream_writer, connection, from_client=True)),
            asyncio.create_task(self._pump(upstream_reader, client_writer, connection, from_client=False)),
        ]

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: RelayedConnection,
        *,
        from_client: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK):
                if not connection.flowing.is_set():
                    continue  # frozen: what is sent goes nowhere, but a hang-up is still seen
                writer.write(data)
                await writer.drain()
        if from_client:
            connection.closed_by_client.set()
        writer.close()
