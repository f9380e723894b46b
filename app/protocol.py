"""uvicorn's httptools protocol with the limits it lacks: header size, read timeouts, a
connection cap, and JSON for the errors the server answers itself.

httptools, unlike h11, buffers a header of any length, and uvicorn starts no timer on a
connection until it has answered a request on it: a client that sends nothing, or a header
that never ends, is held for ever. Here:

- the request line and headers must fit in `max_header_bytes` (431 otherwise);
- they must arrive within `header_timeout` seconds of the connection opening or of the previous
  answer on it, and a body must not stall for more than `body_timeout` seconds (the connection
  is closed, no answer: the client is not listening);
- at most `max_connections` are open: a new one over the cap closes the longest-idle connection
  that has no request under way, or itself when every connection is busy;
- a malformed request and an oversized header are answered in JSON, like every other error.

uvicorn builds one protocol object per connection from the class alone, so the limits are class
attributes, set by `configured` in each worker before it serves (app/serve.py).
"""

import asyncio
import json
import resource
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


def json_error(status: int, detail: str) -> bytes:
    """A whole HTTP response with the service's JSON error body, closing the connection."""
    body = json.dumps({"detail": detail}).encode()
    head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return STATUS_LINE[status] + head % len(body) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = 16 * 1024
    header_timeout = 10.0
    body_timeout = 10.0
    max_connections = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # of the request line and headers read so far
        self._in_head = True  # waiting for, or reading, a request line and headers
        self._idle_since: float | None = time.monotonic()  # no request under way since then
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            idle = [c for c in self.connections if isinstance(c, GuardedHttpToolsProtocol)
                    and c._idle_since is not None and c is not self]  # fmt: skip
            victim = min(idle, key=lambda c: c._idle_since or 0.0) if idle else self
            victim.transport.close()
            if victim is self:
                return
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return  # refused: whatever else the client sends is not read
        self._idle_since = None
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: the chunk that completed the headers may carry body bytes too.
        if self.transport.is_closing():
            return  # answered already (a malformed request)
        if self._in_head and self._head_bytes > self.max_header_bytes:
            self._refuse(431, f"the request line and headers exceed {self.max_header_bytes} bytes")
        elif not self._in_head and self.cycle is not None and self.cycle.more_body:
            self._arm(self.body_timeout)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Not while a pipelined request, already read, is being answered.
        if not self.transport.is_closing() and self.cycle.response_complete:
            # uvicorn's own keep-alive timer now runs too; ours bounds a request begun under it.
            self._in_head, self._head_bytes = True, 0
            self._idle_since = time.monotonic()
            self._arm(self.header_timeout)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(json_error(400, f"invalid HTTP request: {msg}"))
        self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        self._disarm()
        self.transport.write(json_error(status, detail))
        self.transport.close()
        self.parser = None  # type: ignore[assignment]  # nothing more is parsed on it

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's receive() then says http.disconnect
            self.cycle.message_event.set()
        self.transport.close()


# File descriptors kept free of connections: the model file, the decoders' pipes, logs.
SPARE_FILES = 64


def configured(
    max_header_bytes: int, header_timeout: float, body_timeout: float, max_connections: int
) -> None:
    """Set the limits of every connection this process will serve. The connection cap stays
    below the open-file limit, so that the cap, never an accept() failing, turns clients away."""
    cls = GuardedHttpToolsProtocol
    cls.max_header_bytes, cls.header_timeout = max_header_bytes, header_timeout
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cls.body_timeout = body_timeout
    cls.max_connections = max(1, min(max_connections, files - SPARE_FILES))
