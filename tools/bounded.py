"""Bounded HTTP reading for fetch_page: one deadline over every socket operation, and content
decoding whose output is bounded while it inflates.

- `deadline_transport(deadline)`: an httpx transport whose sockets never wait past `deadline`
  (a `time.monotonic()` instant). httpx's own timeouts are per operation, so a server that
  sends one byte a second never trips them; here each connect, TLS handshake, write and read
  gets at most the time left, so the status line, the headers and the body are all covered.
- `decoded(raw, encodings, ...)`: the body with its Content-Encoding layers undone, lazily.
  Only gzip (x-gzip), deflate and identity are known; at most `MAX_ENCODINGS` layers. Each
  layer inflates at most `INFLATE_STEP` bytes per call and only when the reader asks for more,
  so the memory held is a few steps per layer however far the data would inflate: the caller
  stops pulling at its byte cap. httpx's decoders inflate a whole network chunk at once, which
  is how 1.8 KB of "gzip, gzip" became 1 GB in memory.

What this is not: a general HTTP client (fetch_page's redirects, SSRF guard and byte cap live in
`tools.fetch`), nor a reader of brotli or zstd (no bounded decoder is installed for them).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

ACCEPT_ENCODING = "gzip, deflate"  # what `decoded` can inflate within bounds, and no more
MAX_ENCODINGS = 4  # Content-Encoding layers; a longer list is an attack, not a page
INFLATE_STEP = 64 * 1024  # most bytes one layer inflates per call
GZIP_MAGIC = b"\x1f\x8b"


class DecodingError(Exception):
    """The body's Content-Encoding cannot be read; the message says why in one line."""


# --- the deadline ----------------------------------------------------------------------------


def _time_left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the overall deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _time_left(self.deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _time_left(self.deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(self.deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self.inner.start_tls(ssl_context, server_hostname, left), self.deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking sockets, each stream bounded by one deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(self.deadline, timeout, httpcore.ConnectTimeout)
        stream = self.inner.connect_tcp(host, port, left, local_address, socket_options)
        return DeadlineStream(stream, self.deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _time_left(self.deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self.inner.connect_unix_socket(path, left, socket_options), self.deadline
        )

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(0.0, self.deadline - time.monotonic())))


def deadline_transport(deadline: float) -> httpx.HTTPTransport:
    """An httpx transport (no keep-alive, no proxies) whose sockets stop at `deadline`.

    httpx 0.28 takes no network backend, so the transport's connection pool is replaced by one
    built the same way with ours; tests/tools/test_fetch.py's trickling server checks it holds.
    """
    transport = httpx.HTTPTransport(
        trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
    )
    transport._pool = httpcore.ConnectionPool(  # noqa: SLF001 - see the docstring
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_keepalive_connections=0,
        network_backend=DeadlineBackend(deadline),
    )
    return transport


# --- decoding --------------------------------------------------------------------------------


def content_encodings(header: str) -> list[str]:
    """The layers of a Content-Encoding header, in the order they were applied."""
    names = [part.strip().lower() for part in header.split(",")]
    names = [name for name in names if name and name != "identity"]
    if len(names) > MAX_ENCODINGS:
        raise DecodingError(
            f"{len(names)} content-encoding layers (at most {MAX_ENCODINGS} are read)"
        )
    unknown = sorted({n for n in names if n not in ("gzip", "x-gzip", "deflate")})
    if unknown:
        raise DecodingError(
            f"content-encoding {', '.join(unknown)} is not supported (gzip, deflate are)"
        )
    return names


def _decompressor(encoding: str, head: bytes) -> Any:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip, or zlib sent under its name
    # "deflate" is meant to be zlib-wrapped; some servers send raw deflate. The zlib header is
    # a checksummed pair of bytes, so two bytes tell them apart.
    is_zlib = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS)


def _inflate(source: Iterator[bytes], encoding: str, check: Callable[[], None]) -> Iterator[bytes]:
    """One layer undone, at most INFLATE_STEP bytes a yield, as far as the consumer pulls.
    gzip may hold several members back to back; bytes after the last one are ignored."""
    pending, obj, members = b"", None, 0
    for chunk in source:
        pending += chunk
        while pending:
            if obj is None:
                if len(pending) < 2:
                    break  # a trickled first byte: wait for the two that name the format
                if members and (encoding == "deflate" or not pending.startswith(GZIP_MAGIC)):
                    return  # trailing bytes after the stream, ignored as browsers do
                obj, members = _decompressor(encoding, pending), members + 1
            data, pending = pending, b""
            while True:
                check()
                try:
                    out = obj.decompress(data, INFLATE_STEP)
                except zlib.error as e:
                    raise DecodingError(f"the body is not valid {encoding} data ({e})") from None
                if out:
                    yield out
                data = obj.unconsumed_tail
                if obj.eof:  # what follows the member is another one, or trailing bytes
                    pending, obj = obj.unused_data, None
                    break
                if not data and len(out) < INFLATE_STEP:
                    break  # input used up and no output held back: wait for the next chunk
    if not members and pending:
        raise DecodingError(f"the body is not valid {encoding} data (too short)")


def decoded(
    raw: Iterator[bytes], encodings: list[str], check: Callable[[], None]
) -> Iterator[bytes]:
    """The raw body with every layer of `encodings` undone, last applied first; `check` runs
    between steps (the deadline), since inflating can be work without any network read."""
    stream = raw
    for encoding in reversed(encodings):
        stream = _inflate(stream, encoding, check)
    return stream
