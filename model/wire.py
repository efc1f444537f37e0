"""JSON over HTTP to an `edgeagent serve` server, on the standard library alone.

`Endpoint(root, key)` is the server's API root (e.g. http://127.0.0.1:8741/v1) and its key:
`get` and `post` return a JSON body; `lines` streams one (an NDJSON answer) line by line, and
leaving its block early closes the connection, which is how the server learns to stop.
Not httpx, as the rest of the project uses: importing httpx and building its client (an SSL
context) costs about 0.15 s of CPU at every start, a third of what an `ask` through a running
server may take before its first token. One connection per request: on a loopback server a
new one costs well under a millisecond, and nothing is shared between threads.

No proxies from the environment: they must not carry a loopback model's traffic.
Not here: what the requests mean (`model.remote`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from model.loaded import ModelLoadError

CONNECT_S = 5.0
READ_S = 600.0  # a long prompt's prefill on a busy server, before its first line


class ServerError(ModelLoadError):
    """The server could not be reached, or refused a request: one line for the user."""


@dataclass(frozen=True)
class Endpoint:
    root: str  # the API root, without a trailing slash
    api_key: str | None = None

    def get(self, path: str) -> Any:
        return self._json("GET", path, None)

    def post(self, path: str, body: Any) -> Any:
        return self._json("POST", path, body)

    @contextlib.contextmanager
    def lines(self, path: str, body: Any) -> Iterator[Iterator[str]]:
        """The answer's lines as they arrive; an error status is a ServerError before any."""
        conn, response = self._open("POST", path, body)
        try:
            yield _lines(response, self.root)
        finally:
            conn.close()  # mid-answer, this is what cancels the request on the server

    def _json(self, method: str, path: str, body: Any) -> Any:
        conn, response = self._open(method, path, body)
        try:
            return json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise ServerError(f"the server at {self.root} sent a broken answer: {e}") from None
        finally:
            conn.close()

    def _open(
        self, method: str, path: str, body: Any
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = _connection(self.root)
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(READ_S)
            conn.request(method, urlsplit(self.root).path + path, data, headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ServerError(f"cannot reach the server at {self.root}: {e}") from None
        if response.status >= 400:
            message = _refusal(response)
            conn.close()
            raise ServerError(f"the server at {self.root} refused: {message}")
        return conn, response


def _connection(root: str) -> http.client.HTTPConnection:
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"not a server URL: {root} (expected http://HOST:PORT)")
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=CONNECT_S)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=CONNECT_S)


def _lines(response: http.client.HTTPResponse, root: str) -> Iterator[str]:
    try:
        while line := response.readline():
            yield line.decode()
    except (OSError, http.client.HTTPException) as e:
        raise ServerError(f"the server at {root} failed mid-answer: {e}") from None


def _refusal(response: http.client.HTTPResponse) -> str:
    """The message of an error body in OpenAI's shape, or the status."""
    try:
        return json.loads(response.read())["error"]["message"]
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return f"HTTP {response.status}"
