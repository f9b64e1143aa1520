"""Tests for the address guard (pipeline/fetch/guard.py, pipeline/fetch/network.py).

Names are resolved by a stub resolver and connections opened by a recording connector: a refused address
must never reach the connector, and a public one the stub hands out is connected to a real HTTP server on
127.0.0.1, so everything above the socket is the real client. No test touches a live site.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from pipeline.contract import read_jsonl
from pipeline.fetch import (
    FetchConfig,
    FetchResult,
    FetchSession,
    fetch_all,
    fetch_url,
    page_path,
    sidecar_path,
)
from pipeline.fetch.guard import AddressGuard, BlockedAddress, address_refusal, name_refusal

REPO = Path(__file__).resolve().parent.parent
PUBLIC = "93.184.215.14"  # a public address: the stubs hand it out, the connector sends it to 127.0.0.1
GUARDED = FetchConfig(timeout=1, total_timeout=3, per_host_delay=0, retries=0)
PAGE = (
    "<html><head><title>T</title></head><body><article><p>" + "Words. " * 40 + "</p></article></body></html>"
)


class Network:
    """A stub resolver and a recording connector: public addresses lead to the local test server."""

    def __init__(self, names: dict[str, Sequence[str] | list[Sequence[str]]], local_port: int = 0) -> None:
        self.names = names  # host -> addresses, or a list of answers, one per call (the last repeats)
        self.local_port = local_port
        self.lookups: list[str] = []
        self.connects: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        answer = self.names.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, f"stub resolver: no such name {host}")
        if answer and isinstance(answer[0], list | tuple):
            answers = list(answer)
            return answers[min(self.lookups.count(host), len(answers)) - 1]  # type: ignore[return-value]
        return answer  # type: ignore[return-value]

    def connect(self, address: str, port: int, timeout: float | None, local: str | None) -> socket.socket:
        self.connects.append((address, port))
        if address != PUBLIC or not self.local_port:
            raise AssertionError(f"connected to {address}:{port}, which the guard should have refused")
        return socket.create_connection(("127.0.0.1", self.local_port), timeout)

    def session(self, config: FetchConfig = GUARDED) -> FetchSession:
        return FetchSession(config, resolver=self.resolve, connect=self.connect)


def assert_blocked(result: FetchResult, raw: Path, *names: str) -> dict[str, object]:
    """Failed with blocked_address, named in the detail, with only an error sidecar on disk."""
    assert (result.status, result.reason) == ("failed", "blocked_address"), result
    for name in names:
        assert name in result.detail, result.detail
    assert result.path == sidecar_path(page_path(raw, result.url))
    meta = json.loads(result.path.read_text(encoding="utf-8"))
    assert meta["error"] == {"reason": "blocked_address", "detail": result.detail}
    assert not page_path(raw, result.url).exists()
    return meta


# ---------------------------------------------------------------------------------------------------
# The address rules


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", ""),
        ("192.0.2.1", ""),  # documentation range: not globally routable
        ("fec0::1", "site-local"),
        ("::ffff:169.254.169.254", "link-local 169.254.169.254 in IPv4-mapped form"),
        ("::ffff:127.0.0.1", "loopback 127.0.0.1 in IPv4-mapped form"),
        ("2002:a00:1::1", "private 10.0.0.1 in 6to4 form"),
        ("2002:7f00:1::", "loopback 127.0.0.1 in 6to4 form"),
        ("64:ff9b::a9fe:a9fe", "link-local 169.254.169.254 in NAT64 form"),
        ("64:ff9b:1::1", "NAT64"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address))
    assert refusal is not None, address
    assert why in refusal


@pytest.mark.parametrize(
    "address", ["8.8.8.8", PUBLIC, "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_local_names_are_refused_without_a_lookup() -> None:
    for name in ("localhost", "LOCALHOST.", "api.localhost", "localhost.localdomain"):
        assert name_refusal(name), name
    assert name_refusal("localhost.example.com") is None
    lookups: list[str] = []
    guard = AddressGuard(resolver=lambda host, port: lookups.append(host) or ["127.0.0.1"])
    with pytest.raises(BlockedAddress, match="localhost"):
        guard.addresses("localhost", 80)
    assert lookups == []


def test_every_resolved_address_is_checked() -> None:
    guard = AddressGuard(resolver=lambda host, port: [PUBLIC, "10.1.2.3"])
    with pytest.raises(BlockedAddress) as caught:
        guard.addresses("mixed.example", 80)
    assert (caught.value.host, caught.value.address) == ("mixed.example", "10.1.2.3")
    assert AddressGuard(allow_private=True, resolver=lambda h, p: [PUBLIC, "10.1.2.3"]).addresses(
        "m", 80
    ) == [
        ipaddress.ip_address(PUBLIC),
        ipaddress.ip_address("10.1.2.3"),
    ]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "017700000001", "0177.0.0.1", "127.1"])
def test_numeric_host_forms_resolve_to_loopback_and_are_refused(host: str) -> None:
    """The system resolver (``getaddrinfo``, no DNS for numeric forms) reads these as 127.0.0.1."""
    with pytest.raises(BlockedAddress) as caught:
        AddressGuard().addresses(host, 80)
    assert caught.value.address == "127.0.0.1"
    assert "loopback" in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# Through the fetcher: refused before any connection, robots.txt included


def test_internal_destinations_get_blocked_address_sidecars(tmp_path: Path) -> None:
    network = Network(
        {
            "metadata.google.internal": ["169.254.169.254"],
            "intranet.example": [PUBLIC, "10.1.2.3"],
            "printer.example": ["fe80::1%1"],
        }
    )
    urls = {
        "http://127.0.0.1:8080/admin": "127.0.0.1",
        "http://localhost:8080/": "localhost",
        "http://app.localhost/": "app.localhost",
        "http://[::1]:8080/": "::1",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
        "http://10.0.0.1/": "10.0.0.1",
        "http://metadata.google.internal/computeMetadata/v1/": "169.254.169.254",
        "http://[::ffff:169.254.169.254]/": "::ffff:169.254.169.254",
        "http://[2002:a00:1::1]/": "2002:a00:1::1",
        "http://intranet.example/": "10.1.2.3",
        "http://printer.example/": "fe80::1",
    }

    with network.session() as session:
        results = fetch_all(list(urls), tmp_path, GUARDED, session=session)

    assert len(results) == len(urls)
    for result, named in zip(results, urls.values(), strict=True):
        meta = assert_blocked(result, tmp_path, named)
        assert meta["final_url"] == result.url
    assert network.connects == []  # not even robots.txt was asked for
    # Names were looked up once each (robots.txt's refusal is the page's), literals and localhost never.
    assert sorted(network.lookups) == ["intranet.example", "metadata.google.internal", "printer.example"]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "017700000001"])
def test_numeric_loopback_urls_are_blocked(host: str, tmp_path: Path) -> None:
    connects: list[str] = []

    def connect(address: str, port: int, timeout: float | None, local: str | None) -> socket.socket:
        connects.append(address)
        raise AssertionError("the guard let a loopback address through")

    with FetchSession(GUARDED, connect=connect) as session:  # the system resolver
        result = fetch_url(f"http://{host}:8080/x", tmp_path, GUARDED, session)

    assert_blocked(result, tmp_path, host, "127.0.0.1")
    assert connects == []


@pytest.fixture
def public_site(httpserver: HTTPServer) -> HTTPServer:
    """The test server, reached as public hosts through the stub network; no robots.txt."""
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    return httpserver


def test_redirect_from_a_public_host_to_an_internal_one_is_blocked(
    public_site: HTTPServer, tmp_path: Path
) -> None:
    port = public_site.port
    targets = {
        "/to-metadata": "http://169.254.169.254/latest/meta-data/",
        "/to-localhost": f"http://localhost:{port}/admin",
        "/to-mapped": f"http://[::ffff:127.0.0.1]:{port}/admin",
        "/to-rebound": f"http://internal.example:{port}/admin",
    }
    for path, target in targets.items():
        public_site.expect_request(path).respond_with_data("", status=302, headers={"Location": target})
    public_site.expect_request("/ok").respond_with_data(PAGE, content_type="text/html")
    public_site.expect_request("/admin").respond_with_data("secret", content_type="text/html")
    network = Network({"news.example": [PUBLIC], "internal.example": ["10.0.0.7"]}, local_port=port)
    base = f"http://news.example:{port}"

    with network.session() as session:
        ok, *redirected = fetch_all(
            [f"{base}/ok"] + [base + p for p in targets], tmp_path, GUARDED, session=session
        )

    assert ok.status == "fetched"  # the stub network works: a public host is fetched
    for result, target in zip(redirected, targets.values(), strict=True):
        meta = assert_blocked(result, tmp_path)
        assert meta["final_url"] == target
    assert {address for address, _ in network.connects} == {PUBLIC}
    assert "/admin" not in [request.path for request, _ in public_site.log]


def test_dns_rebinding_cannot_reach_a_second_answer(public_site: HTTPServer, tmp_path: Path) -> None:
    """The resolver answers a public address first and 127.0.0.1 afterwards: the connection goes to the
    address that was checked, with no second lookup; a later connection is checked again and refused."""
    public_site.expect_request("/page").respond_with_data(PAGE, content_type="text/html")
    public_site.expect_request("/other").respond_with_data(PAGE, content_type="text/html")
    network = Network({"rebind.example": [[PUBLIC], ["127.0.0.1"]]}, local_port=public_site.port)
    config = FetchConfig(timeout=1, total_timeout=3, per_host_delay=0, retries=0, respect_robots=False)
    base = f"http://rebind.example:{public_site.port}"

    with network.session(config) as session:
        first = fetch_url(f"{base}/page", tmp_path, config, session)
    assert first.status == "fetched"
    assert network.lookups == ["rebind.example"]  # one lookup for the connection
    assert network.connects == [(PUBLIC, public_site.port)]  # to the checked address itself
    request, _ = public_site.log[-1]
    assert request.headers["Host"] == f"rebind.example:{public_site.port}"  # the name, not the address

    with network.session(config) as session:  # a new connection: resolved and checked again
        second = fetch_url(f"{base}/other", tmp_path, config, session)
    assert_blocked(second, tmp_path, "rebind.example", "127.0.0.1")
    assert network.lookups == ["rebind.example"] * 2
    assert network.connects == [(PUBLIC, public_site.port)]


def test_allow_private_lets_the_local_server_through(public_site: HTTPServer, tmp_path: Path) -> None:
    public_site.expect_request("/page").respond_with_data(PAGE, content_type="text/html")
    url = f"http://127.0.0.1:{public_site.port}/page"

    blocked = fetch_url(url, tmp_path, GUARDED)
    assert_blocked(blocked, tmp_path, "127.0.0.1", "--allow-private")
    assert public_site.log == []

    allowed = fetch_url(
        url, tmp_path, FetchConfig(timeout=1, total_timeout=3, per_host_delay=0, allow_private=True)
    )
    assert allowed.status == "fetched"
    assert [request.path for request, _ in public_site.log] == ["/robots.txt", "/page"]


# ---------------------------------------------------------------------------------------------------
# TLS: the socket goes to the checked address, the certificate is checked against the host name


def tls_files(tmp_path: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA file and a server context whose certificate, signed by that CA, is for ``name``."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer_key: ec.EllipticCurvePrivateKey,
        issuer: str,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("test CA", ca_key, ca_key, "test CA", True)
    leaf = certificate(name, key, ca_key, "test CA", False)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    ca_file, context = tls_files(tmp_path, "news.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the client trusts the test CA (read per session)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def test_tls_checks_the_host_name_on_a_connection_to_the_checked_address(
    tls_server: HTTPServer, tmp_path: Path
) -> None:
    tls_server.expect_request("/page").respond_with_data(PAGE, content_type="text/html")
    port = tls_server.port
    network = Network({"news.example": [PUBLIC], "other.example": [PUBLIC]}, local_port=port)
    config = FetchConfig(timeout=1, total_timeout=3, per_host_delay=0, retries=0, respect_robots=False)
    urls = [f"https://news.example:{port}/page", f"https://other.example:{port}/page"]

    with network.session(config) as session:
        good, wrong = fetch_all(urls, tmp_path, config, session=session)

    assert good.status == "fetched"  # SNI and the certificate matched news.example over PUBLIC's socket
    assert (wrong.status, wrong.reason) == ("failed", "connection_error")  # the name is not the cert's
    assert "CERTIFICATE_VERIFY_FAILED" in wrong.detail
    assert {address for address, _ in network.connects} == {PUBLIC}


# ---------------------------------------------------------------------------------------------------
# The command line: refused by default, reported by clean


def test_cli_fetch_of_a_loopback_url_is_blocked_and_clean_reports_it(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/page").respond_with_data(PAGE, content_type="text/html")
    url = f"http://127.0.0.1:{httpserver.port}/page"
    urls, raw, out = tmp_path / "urls.txt", tmp_path / "raw", tmp_path / "out"
    urls.write_text(url + "\n", encoding="utf-8")

    def pipeline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=REPO, timeout=120
        )

    fetched = pipeline("fetch", "--urls", str(urls), "--raw", str(raw), "--delay", "0", "--retries", "0")

    assert fetched.returncode == 0, fetched.stderr
    assert (
        fetched.stdout.strip()
        == "1 URLs: 0 fetched, 0 skipped (already fetched), 1 failed (blocked_address 1)"
    )
    assert httpserver.log == []  # nothing was asked of the server, robots.txt included
    meta = json.loads(sidecar_path(page_path(raw, url)).read_text(encoding="utf-8"))
    assert meta["error"]["reason"] == "blocked_address" and "127.0.0.1" in meta["error"]["detail"]

    cleaned = pipeline("clean", str(raw), "--out", str(out))

    assert cleaned.returncode == 0, cleaned.stderr
    [row] = read_jsonl(out / "rejected.jsonl")
    assert (row["reason"], row["stage"]) == ("blocked_address", "fetch")
    assert url in row["detail"]
