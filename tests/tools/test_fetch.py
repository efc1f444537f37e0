"""fetch_page against a real HTTP server on 127.0.0.1 (allowlisted), plus the SSRF guard."""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.base import ToolError
from tools.fetch import FetchSettings, fetch_text, fetch_tool
from tools.ssrf import loose_ipv4, refusal_reason

ARTICLE = """<!doctype html><html><head><title>Tide Pools of Brittany</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>Tide Pools of Brittany</h1>
<p>The tide pools along the Brittany coast shelter anemones, crabs and small fish that wait
for the sea to return twice a day. Visitors should step only on bare rock.</p>
<p>Biologists count the periwinkles every spring to follow how the warmer water changes
the life of the pools, and the counts have risen for a decade.</p></article>
<footer>Copyright nobody</footer></body></html>"""

LONG_HTML = (
    "<html><head><title>Long page</title></head><body><article>"
    + "".join(
        f"<p>Paragraph {i} talks about lighthouses and their keepers.</p>" for i in range(400)
    )
    + "</article></body></html>"
)


WORDS = b"The keeper climbs the lighthouse stairs at dusk. "


def encode(body: bytes, layer: str) -> bytes:
    """One Content-Encoding layer; "raw-deflate" is deflate without its zlib wrapper."""
    wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[layer]
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(body) + packer.flush()


def gzip_of_zeros(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(megabytes)), packer.flush()])


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def send(self, body: bytes | str, content_type: str, status: int = 200) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_encoded(self, body: bytes, header: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Encoding", header)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path
        port = self.server.server_address[1]
        if path == "/article.html":
            self.send(ARTICLE, "text/html; charset=utf-8")
        elif path == "/plain.txt":
            self.send("Just some plain text.\nSecond line.", "text/plain; charset=utf-8")
        elif path == "/data.json":
            self.send(json.dumps({"answer": 42, "unit": "lighthouses"}), "application/json")
        elif path == "/big.txt":
            self.send("x" * 200_000, "text/plain")
        elif path == "/long.html":
            self.send(LONG_HTML, "text/html")
        elif path == "/doc.pdf":
            self.send(b"%PDF-1.4 binary stuff", "application/pdf")
        elif path.startswith("/encoded/"):  # /encoded/gzip+deflate: layers in applied order
            layers = path.split("/")[2].split("+")
            body = WORDS * 400
            for layer in layers:
                body = encode(body, layer)
            header = ", ".join("deflate" if n == "raw-deflate" else n for n in layers)
            self.send_encoded(body, header)
        elif path == "/two-members":
            self.send_encoded(
                encode(b"first half, ", "gzip") + encode(b"second half", "gzip"), "gzip"
            )
        elif path == "/brotli":
            self.send_encoded(b"\x0b\x02\x80hello\x03", "br")
        elif path == "/five-layers":
            self.send_encoded(b"x", "gzip, gzip, gzip, gzip, gzip")
        elif path == "/not-gzip":
            self.send_encoded(b"this was never compressed", "gzip")
        elif path == "/bomb":  # 64 MB of zeros, gzipped twice: about 1 KB on the wire
            self.send_encoded(encode(gzip_of_zeros(64), "gzip"), "gzip, gzip")
        elif path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            self.redirect(f"/hop/{n - 1}" if n > 0 else "../plain.txt")
        elif path == "/to-private":
            self.redirect("http://10.0.0.1/secret")
        elif path == "/to-localhost":
            self.redirect(f"http://localhost:{port}/plain.txt")
        elif path == "/to-ftp":
            self.redirect("ftp://127.0.0.1/file")
        else:
            self.send("not here", "text/plain", status=404)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings() -> FetchSettings:
    return FetchSettings(
        allow_hosts=["127.0.0.1"], connect_timeout=1, read_timeout=1, deadline=5, max_bytes=50_000
    )


def test_html_becomes_markdown_with_title(base_url: str, settings: FetchSettings) -> None:
    page = fetch_text(f"{base_url}/article.html", settings)
    assert page.title == "Tide Pools of Brittany"
    assert page.content_type == "text/html"
    assert "periwinkles every spring" in page.text
    assert "Copyright nobody" not in page.text  # boilerplate dropped by trafilatura
    result = fetch_tool(settings).run({"url": f"{base_url}/article.html"})
    assert result.ok and not result.truncated
    assert result.text.startswith("Title: Tide Pools of Brittany\nURL: ")
    assert result.metadata["full_text"] == page.text


def test_plain_text_and_json_pass_through(base_url: str, settings: FetchSettings) -> None:
    assert fetch_text(f"{base_url}/plain.txt", settings).text == (
        "Just some plain text.\nSecond line."
    )
    page = fetch_text(f"{base_url}/data.json", settings)
    assert json.loads(page.text) == {"answer": 42, "unit": "lighthouses"}
    assert page.content_type == "application/json"


def test_byte_cap_truncates_and_flags(base_url: str, settings: FetchSettings) -> None:
    page = fetch_text(f"{base_url}/big.txt", settings)
    assert page.byte_capped and len(page.text) == settings.max_bytes
    result = fetch_tool(settings).run({"url": f"{base_url}/big.txt"})
    assert result.ok and result.truncated
    assert "stopped reading after 50,000 bytes" in result.text


def test_long_page_is_clipped_and_full_text_kept(base_url: str, settings: FetchSettings) -> None:
    settings.max_chars = 500
    result = fetch_tool(settings).run({"url": f"{base_url}/long.html"})
    assert result.ok and result.truncated
    full = result.metadata["full_text"]
    assert "Paragraph 399" in full and "Paragraph 399" not in result.text
    assert f"page is {len(full):,} characters long" in result.text
    assert len(result.text) < 800


def test_redirects_within_limit_are_followed(base_url: str, settings: FetchSettings) -> None:
    page = fetch_text(f"{base_url}/hop/4", settings)  # 5 redirects, the last one relative
    assert page.final_url == f"{base_url}/plain.txt"
    assert page.text.startswith("Just some plain text.")


def test_too_many_redirects_are_refused(base_url: str, settings: FetchSettings) -> None:
    with pytest.raises(ToolError, match="redirected more than 5 times"):
        fetch_text(f"{base_url}/hop/5", settings)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/to-private", "private address"),
        ("/to-localhost", "loopback address"),
        ("/to-ftp", "scheme ftp"),
    ],
)
def test_redirect_targets_are_rechecked(
    base_url: str, settings: FetchSettings, path: str, message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        fetch_text(f"{base_url}{path}", settings)


def test_pdf_and_http_errors_are_clear(base_url: str, settings: FetchSettings) -> None:
    result = fetch_tool(settings).run({"url": f"{base_url}/doc.pdf"})
    assert result.error == (
        f"{base_url}/doc.pdf is application/pdf; fetch_page reads HTML, text and JSON only"
    )
    assert "HTTP 404" in (fetch_tool(settings).run({"url": f"{base_url}/nope"}).error or "")


def test_silent_server_times_out_quickly() -> None:
    with socket.socket() as listener:  # the kernel accepts the connection; nobody ever answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        settings = FetchSettings(allow_hosts=["127.0.0.1"], connect_timeout=0.5, read_timeout=0.3)
        start = time.monotonic()
        result = fetch_tool(settings).run({"url": f"http://127.0.0.1:{port}/"})
    assert result.error is not None and "timed out" in result.error
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    "layers", ["gzip", "deflate", "raw-deflate", "gzip+gzip", "deflate+gzip", "gzip+gzip+gzip"]
)
def test_every_content_encoding_layer_is_decoded(
    base_url: str, settings: FetchSettings, layers: str
) -> None:
    page = fetch_text(f"{base_url}/encoded/{layers}", settings)
    assert page.text == (WORDS * 400).decode().strip() and not page.byte_capped


def test_gzip_members_back_to_back_are_all_read(base_url: str, settings: FetchSettings) -> None:
    assert fetch_text(f"{base_url}/two-members", settings).text == "first half, second half"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/brotli", "content-encoding br is not supported"),
        ("/five-layers", "5 content-encoding layers"),
        ("/not-gzip", "not valid gzip data"),
    ],
)
def test_unreadable_encodings_are_clear_errors(
    base_url: str, settings: FetchSettings, path: str, message: str
) -> None:
    result = fetch_tool(settings).run({"url": f"{base_url}{path}"})
    assert result.error is not None and message in result.error


def test_a_layered_bomb_is_capped_while_it_inflates(base_url: str, settings: FetchSettings) -> None:
    # httpx inflated each layer whole: 64 MB held before the 50 KB cap applied.
    tracemalloc.start()
    try:
        page = fetch_text(f"{base_url}/bomb", settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert page.byte_capped and len(page.text) <= settings.max_bytes
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MB held while decoding"


def trickle(listener: socket.socket, stop: threading.Event, every_s: float) -> None:
    """Answer one request with a status line and endless headers, one byte at a time."""
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: " + b"a" * 10_000
        for byte in data:
            if stop.wait(every_s):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:  # the client gave up: what the test wants
                return


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline() -> None:
    # Each byte comes well within read_timeout, so only an overall deadline can stop this.
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        server = threading.Thread(target=trickle, args=(listener, stop, 0.05), daemon=True)
        server.start()
        settings = FetchSettings(allow_hosts=["127.0.0.1"], read_timeout=1, deadline=1.5)
        start = time.monotonic()
        try:
            result = fetch_tool(settings).run({"url": f"http://127.0.0.1:{port}/"})
        finally:
            stop.set()
            server.join(5)
    assert result.error is not None and "timed out" in result.error
    assert time.monotonic() - start < 3


def test_a_resolver_that_never_answers_is_given_up_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: getaddrinfo takes no timeout, and a resolver can hang for minutes.
    release = threading.Event()

    def hanging_resolver(*args: object, **kwargs: object) -> list[object]:
        release.wait(30)
        raise socket.gaierror("released")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_resolver)
    start = time.monotonic()
    try:
        result = fetch_tool(FetchSettings(deadline=1)).run({"url": "http://slow-dns.example/"})
    finally:
        release.set()
    assert result.error is not None and "resolving host 'slow-dns.example' took too long" in (
        result.error
    )
    assert time.monotonic() - start < 2


def test_closed_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        result = fetch_tool(FetchSettings(allow_hosts=["127.0.0.1"])).run(
            {"url": f"http://127.0.0.1:{port}/"}
        )
    assert result.error is not None and "could not connect" in result.error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:a00:1::]/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "https://127.0.0.1:8443/",
    ],
)
def test_guard_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(ToolError, match="refused to fetch"):
        fetch_text(url, FetchSettings())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file", "scheme ftp"),
        ("file:///etc/passwd", "file:// URLs are not allowed"),
        ("gopher://127.0.0.1/", "scheme gopher"),
        ("example.com/page", "scheme"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_bad_schemes_and_urls_are_refused(url: str, message: str) -> None:
    result = fetch_tool(FetchSettings()).run({"url": url})
    assert result.error is not None and message in result.error


def test_allowlist_is_exact(base_url: str) -> None:
    port = base_url.rsplit(":", 1)[1]
    ok = FetchSettings(allow_hosts=[f"127.0.0.1:{port}"])
    assert fetch_text(f"{base_url}/plain.txt", ok).text.startswith("Just")
    with pytest.raises(ToolError, match="loopback"):
        fetch_text(f"{base_url}/plain.txt", FetchSettings(allow_hosts=["127.0.0.1:1"]))


def test_loose_ipv4_forms() -> None:
    assert str(loose_ipv4("2130706433")) == "127.0.0.1"
    assert str(loose_ipv4("0177.0.0.1")) == "127.0.0.1"
    assert str(loose_ipv4("0x7f.1")) == "127.0.0.1"
    assert str(loose_ipv4("10.1")) == "10.0.0.1"
    assert loose_ipv4("example.com") is None
    assert loose_ipv4("256.1.1.1") is None
    assert loose_ipv4("08.0.0.1") is None  # not octal, not decimal: a name, not an address


def test_public_addresses_pass() -> None:
    import ipaddress

    for address in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]:
        assert refusal_reason(ipaddress.ip_address(address)) is None


def test_file_urls_only_under_allowed_roots(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "note.md").write_text("# Lighthouse log\n\nThe lamp was lit at dusk.")
    (tmp_path / "secret.txt").write_text("do not read")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    settings = FetchSettings(allow_file_roots=[root])
    page = fetch_text((root / "note.md").as_uri(), settings)
    assert page.title == "Lighthouse log" and "lamp was lit" in page.text
    for outside in [tmp_path / "secret.txt", root / "escape.txt"]:
        with pytest.raises(ToolError, match="outside the folders"):
            fetch_text(outside.as_uri(), settings)
    with pytest.raises(ToolError, match="does not exist"):
        fetch_text((root / "gone.md").as_uri(), settings)
    with pytest.raises(ToolError, match="not allowed"):
        fetch_text((root / "note.md").as_uri(), FetchSettings())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "'url' is required"),
        ({"url": 5}, "'url': Input should be a valid string"),
        ({"url": None}, "'url'"),
        ({"url": "http://example.com", "depth": 2}, "'depth' is not a parameter"),
        ("{not json", "not valid JSON"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_arguments_are_error_results(arguments: object, message: str) -> None:
    result = fetch_tool(FetchSettings()).run(arguments)  # type: ignore[arg-type]
    assert result.error is not None and message in result.error
