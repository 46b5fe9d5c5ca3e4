"""uvicorn's HTTP/1.1 protocol with a deadline for a request's headers, against slow-header (slowloris) clients.

    uvicorn.run(app, host=..., port=..., http=header_timeout_protocol(10.0))

uvicorn closes an idle keep-alive connection, and the application bounds the time to read a body
(`--body_timeout_s`), but a client that sends its request line and headers a byte at a time holds its connection
for as long as it likes. With this protocol a connection whose next request's headers are not complete within
`timeout_s` of its first byte (or of the connection opening) is answered `408 Request Timeout` and closed. Such a
connection never became a request, so it is not in the request log.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def header_timeout_protocol(timeout_s: float) -> type[H11Protocol]:
    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:  # the bytes of a request line or headers
                self._arm()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the headers are in: the body has its own deadline
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            body = f"request headers not received within {timeout_s:g} s".encode()
            head = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body))
            self.transport.write(head + body)
            self.transport.close()

    return HeaderTimeoutH11Protocol
