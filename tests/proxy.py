"""A TCP proxy the tests control: put it between the recorder and a database, then cut it."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TCPProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new
    ones (as a dead server or network would), `restore()` accepts again on the same port.
    `hang()` stops forwarding without closing anything, as a network that drops packets
    silently: both ends keep their connections and hear nothing; `resume()` forwards again
    (what was sent meanwhile arrives late, as TCP would deliver it)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._forwarding = asyncio.Event()
        self._forwarding.set()

    def _call(self, coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    def start(self) -> TCPProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._forwarding.wait()  # while hung, a new connection gets no further
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    await self._forwarding.wait()
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._writers.difference_update((writer, upstream_writer))

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()  # RST, like a machine that vanished
        self._writers.clear()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again."""
        self._call(self._listen())

    async def _set_forwarding(self, on: bool) -> None:
        if on:
            self._forwarding.set()
        else:
            self._forwarding.clear()

    def hang(self) -> None:
        """Stop forwarding, silently: nothing is closed, nothing gets through."""
        self._call(self._set_forwarding(False))

    def resume(self) -> None:
        """Forward again."""
        self._call(self._set_forwarding(True))

    def stop(self) -> None:
        self._call(self._set_forwarding(True))
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
