"""fetch_page: read one web page (or an allowlisted local file) as text the model can use.

What it does, and the choices made:
- SSRF guard (`tools.ssrf`): the host is resolved once and every address must be public; the
  connection then goes to the checked IP (pinned), with the Host header and TLS SNI carrying
  the real name, so DNS rebinding between check and connect cannot happen. Hosts in
  `FetchSettings.allow_hosts` skip the guard and are reached by name (tests, the eval server).
- Redirects are followed by hand, at most `max_redirects` (5), each hop re-checked by the guard.
- Time: connect/read timeouts per operation plus an overall `deadline` (25 s) across all hops
  that covers every socket operation: connecting, TLS, sending, the status line and headers,
  and the body (`tools.bounded.deadline_transport`), so a server that trickles its status line
  at one byte a second is cut off at the deadline like a silent one. Name resolution for the
  guard is given up at the deadline too (allowlisted hosts are resolved by the socket layer).
- Bytes: reading stops at `max_bytes` (3 MB) of decoded body. Decoding is `tools.bounded`'s,
  not httpx's: gzip and deflate only, at most 4 layers ("gzip, gzip"), each inflating 64 KiB at
  a time and only as far as this reader pulls, so a compressed bomb is stopped at the cap
  before it takes memory. The page is NOT refused: what was read is converted and the result
  is flagged (`FetchedPage.byte_capped`, `ToolResult.truncated`), since the start of a huge
  page is useful.
- Content types: HTML goes through trafilatura to markdown (plain html2txt when trafilatura finds
  no main text); text and JSON pass through; anything else (PDF, images, archives) is an error.
- Long pages: the model sees the first `max_chars` characters plus a note giving the full length;
  the whole text goes in `ToolResult.metadata["full_text"]`, which is never shown to the model,
  so the agent's long-context mode can read on without fetching again.
- file:// URLs are read only under `allow_file_roots` (empty by default: refused). They exist so
  the `file://` URLs of the local search index (tools/index.py) can be opened.

What it is not: a crawler, a browser (no JavaScript, no cookies kept between calls), a PDF reader,
or a cache. It does not use proxies from the environment (they would defeat the IP pinning).
"""

from __future__ import annotations

import mimetypes
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import trafilatura
from pydantic import BaseModel, ConfigDict, Field

from tools.base import Tool, ToolError, ToolResult
from tools.bounded import (
    ACCEPT_ENCODING,
    DecodingError,
    content_encodings,
    deadline_transport,
    decoded,
)
from tools.settings import FetchSettings
from tools.ssrf import checked_addresses, is_allowed_host

HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "text/csv", "application/json"}
REDIRECTS = {301, 302, 303, 307, 308}


class FetchedPage(BaseModel):
    url: str
    final_url: str
    content_type: str
    title: str = ""
    text: str
    byte_capped: bool = False


class FetchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="the http(s) URL of the page to read")


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lowercased, IDNA-encoded, no brackets or trailing dot
    port: int
    path: str  # path and query, never empty
    host_header: str

    def url_for(self, address: str) -> str:
        netloc = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{netloc}:{self.port}{self.path}"


def split_url(url: str) -> Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ToolError(f"'{url}' is not a valid URL: {e}") from e
    if parts.scheme not in ("http", "https"):
        scheme = parts.scheme or "(none)"
        raise ToolError(f"'{url}' has scheme {scheme}; fetch_page reads http and https URLs only")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ToolError(f"'{url}' has no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as e:
        raise ToolError(f"'{url}' has an invalid host name") from e
    default = 443 if parts.scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    header = shown if port in (None, default) else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or default, path, header)


def remaining(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ToolError(f"fetching {url} took too long (over the overall deadline)")
    return left


def open_response(
    client: httpx.Client, target: Target, url: str, settings: FetchSettings, deadline: float
) -> httpx.Response:
    """Send the GET to the pinned address(es), trying the next one only if connecting fails."""
    if is_allowed_host(target.host, target.port, settings):
        addresses = [target.host]  # trusted: connect by name
    else:
        addresses = checked_addresses(target.host, target.port, deadline)
    headers = {
        "Host": target.host_header,
        "User-Agent": settings.user_agent,
        "Accept": "text/html,application/xhtml+xml,text/plain,application/json;q=0.9,*/*;q=0.5",
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    for i, address in enumerate(addresses):
        left = remaining(deadline, url)
        timeout = httpx.Timeout(
            min(settings.read_timeout, left), connect=min(settings.connect_timeout, left)
        )
        request = client.build_request(
            "GET",
            target.url_for(address),
            headers=headers,
            timeout=timeout,
            extensions={"sni_hostname": target.host},
        )
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError as e:
            if i == len(addresses) - 1:
                raise ToolError(f"could not connect to {target.host}: {e}") from e
    raise AssertionError("unreachable: addresses is never empty")


def read_capped(
    response: httpx.Response, max_bytes: int, deadline: float, url: str
) -> tuple[bytes, bool]:
    """Read the decoded body up to max_bytes; True when there was more than that.

    The raw bytes are decoded here (`tools.bounded.decoded`), one bounded step at a time, so
    no more than about max_bytes is ever inflated, however far the body would expand."""
    chunks: list[bytes] = []
    size = 0
    try:
        layers = content_encodings(response.headers.get("content-encoding", ""))
        body = decoded(response.iter_raw(), layers, lambda: remaining(deadline, url))
        for chunk in body:
            remaining(deadline, url)
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                return b"".join(chunks)[:max_bytes], True
    except DecodingError as e:
        raise ToolError(f"cannot read {url}: {e}") from None
    return b"".join(chunks), False


def one_hop(
    client: httpx.Client, url: str, settings: FetchSettings, deadline: float
) -> str | tuple[str, bytes, bool]:
    """One GET: the next URL when it redirects, else (content_type, body, byte_capped)."""
    response = open_response(client, split_url(url), url, settings, deadline)
    try:
        location = response.headers.get("location")
        if response.status_code in REDIRECTS and location:
            return urljoin(url, location)
        if response.status_code >= 400:
            raise ToolError(f"{url} answered HTTP {response.status_code}")
        body, capped = read_capped(response, settings.max_bytes, deadline, url)
        return response.headers.get("content-type", ""), body, capped
    finally:
        response.close()


def fetch_http(url: str, settings: FetchSettings) -> tuple[str, str, bytes, bool]:
    """GET with manual redirects; returns (final_url, content_type, body, byte_capped)."""
    deadline = time.monotonic() + settings.deadline
    current = url
    # No keep-alive: connections are pooled by IP, so a hop to another name on the same IP could
    # reuse a TLS connection checked for the first name. trust_env=False: no proxies, no netrc.
    transport = deadline_transport(deadline)
    with httpx.Client(transport=transport, trust_env=False, follow_redirects=False) as client:
        for _hop in range(settings.max_redirects + 1):
            try:
                outcome = one_hop(client, current, settings, deadline)
            except httpx.TimeoutException as e:
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                raise ToolError(f"fetching {current} timed out ({why})") from e
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                raise ToolError(f"fetching {current} failed: {type(e).__name__}: {e}") from e
            if isinstance(outcome, str):
                current = outcome
                continue
            return current, *outcome
    raise ToolError(f"{url} redirected more than {settings.max_redirects} times; gave up")


# --- file:// ----------------------------------------------------------------------------------


def fetch_file(url: str, settings: FetchSettings) -> tuple[str, str, bytes, bool]:
    """Read a file:// URL, only under the allowlisted roots (symlinks resolved first)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ToolError(f"'{url}' names a remote file host; only local file:// URLs are read")
    roots = [Path(root).resolve() for root in settings.allow_file_roots]
    if not roots:
        raise ToolError("file:// URLs are not allowed here; fetch_page reads http and https URLs")
    path = Path(unquote(parts.path)).resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise ToolError(f"'{url}' is outside the folders fetch_page may read")
    if not path.is_file():
        raise ToolError(f"'{url}' does not exist")
    with path.open("rb") as f:
        body = f.read(settings.max_bytes + 1)
    guessed = mimetypes.guess_type(path.name)[0] or ""  # "" means: sniff the bytes
    return url, guessed, body[: settings.max_bytes], len(body) > settings.max_bytes


# --- turning bytes into text --------------------------------------------------------------------


def decode(body: bytes, content_type: str) -> str:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    try:
        return body.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def html_to_markdown(body: bytes, url: str, settings: FetchSettings) -> tuple[str, str]:
    """(title, markdown) of an HTML page; bytes go in so trafilatura can read the meta charset."""
    tree = trafilatura.load_html(body)
    title = " ".join((tree.findtext(".//title") or "").split()) if tree is not None else ""
    text = trafilatura.extract(
        body,
        url=url,
        output_format="markdown",
        include_comments=False,
        include_links=settings.include_links,
        include_tables=True,
    )
    if not text:  # trafilatura found no main content (short pages, odd markup)
        text = trafilatura.html2txt(body)
    return title, text or ""


def sniff_type(body: bytes) -> str:
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "text/html"
    if b"\x00" in body[:4096]:
        return "application/octet-stream"
    return "text/plain"


def to_text(
    body: bytes, mime: str, content_type: str, url: str, settings: FetchSettings
) -> tuple[str, str]:
    """(title, text) by media type; content_type is the full header, for its charset."""
    if mime in HTML_TYPES:
        return html_to_markdown(body, url, settings)
    if mime in TEXT_TYPES or mime.endswith("+json"):
        text = decode(body, content_type)
        heading = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text[:4000], re.MULTILINE)
        return (heading.group(1) if heading else ""), text
    raise ToolError(f"{url} is {mime}; fetch_page reads HTML, text and JSON only")


def fetch_text(url: str, settings: FetchSettings) -> FetchedPage:
    """Fetch one URL and return its readable text; raises ToolError for expected failures."""
    url = url.strip()
    if url.lower().startswith("file:"):
        final_url, content_type, body, capped = fetch_file(url, settings)
    else:
        final_url, content_type, body, capped = fetch_http(url, settings)
    mime = content_type.split(";")[0].strip().lower() or sniff_type(body)
    title, text = to_text(body, mime, content_type, final_url, settings)
    page = {"url": url, "final_url": final_url, "content_type": mime, "title": title}
    return FetchedPage(**page, text=text.strip(), byte_capped=capped)


# --- the tool ---------------------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """The first `limit` characters, cut back to a line or word end when one is near."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    for sep in ("\n", " "):
        cut = head.rfind(sep)
        if cut > limit * 0.8:
            return head[:cut]
    return head


def page_result(page: FetchedPage, settings: FetchSettings) -> ToolResult:
    header = (f"Title: {page.title}\n" if page.title else "") + f"URL: {page.final_url}\n\n"
    shown = clip(page.text, settings.max_chars) if page.text else "(the page has no readable text)"
    notes = []
    if len(shown) < len(page.text):
        notes.append(
            f"[page is {len(page.text):,} characters long; showing the first "
            f"{len(shown):,}. The rest of the page is available.]"
        )
    if page.byte_capped:
        notes.append(f"[stopped reading after {settings.max_bytes:,} bytes; the page is larger]")
    text = header + shown + "".join(f"\n\n{note}" for note in notes)
    metadata = {"full_text": page.text, **page.model_dump(exclude={"text", "byte_capped"})}
    return ToolResult(text=text, truncated=bool(notes), metadata=metadata)


def fetch_tool(settings: FetchSettings) -> Tool:
    """The fetch_page tool. metadata["full_text"] holds the whole page, never shown to the model."""

    def run(args: FetchArgs) -> ToolResult:
        return page_result(fetch_text(args.url, settings), settings)

    return Tool(
        name="fetch_page",
        description="Read a web page (HTML, plain text or JSON) and return its main text as "
        "markdown. Use it to open a URL from web_search results or one the user gave.",
        args=FetchArgs,
        fn=run,
    )
