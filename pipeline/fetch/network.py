"""The network layer under the HTTP client: every connection passes the address guard, every socket
operation meets the request's deadline.

httpx 0.28 takes no network backend, so :func:`guarded_transport` gives its ``HTTPTransport`` an httpcore
connection pool with :class:`GuardedBackend`. The backend resolves a host once through the guard, connects
to a checked address itself (the ``Host`` header and TLS's SNI and certificate check keep the host name),
and wraps the socket in a stream whose reads and writes wait at most until the request's deadline: a
server that drips its headers one byte at a time ends at the deadline, not at the per-read time-out times
the number of bytes. A pooled connection is only reused for the same scheme, host and port, so a request
never reaches an address that was not checked when its connection was made.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpcore

from pipeline.fetch.guard import AddressGuard

if TYPE_CHECKING:
    import httpx

# address, port, connect time-out, local address -> a connected socket. Tests pass one that records the
# address asked for.
Connector = Callable[[str, int, float | None, str | None], socket.socket]


def open_socket(address: str, port: int, timeout: float | None, local_address: str | None) -> socket.socket:
    """A TCP connection to an IP address (``socket.create_connection`` does no DNS lookup for one)."""
    source = None if local_address is None else (local_address, 0)
    return socket.create_connection((address, port), timeout, source_address=source)


class Deadlines:
    """The deadline of the request each thread is making.

    httpcore hands a stream only a per-read time-out; the deadline of the whole request reaches the socket
    through here. The session owns one, and sets it around each request (:meth:`until`).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def until(self, deadline: float) -> Iterator[None]:
        """Socket operations of this thread end by ``deadline`` (``time.monotonic()`` seconds)."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = deadline
        try:
            yield
        finally:
            self._local.deadline = previous

    def clamp(self, timeout: float | None, expired: type[Exception]) -> float | None:
        """``timeout`` cut to the time left before this thread's deadline.

        Raises:
            expired: the deadline has passed.
        """
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise expired("the request's deadline has passed")
        return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read, write and TLS handshake ends by the thread's request deadline."""

    def __init__(self, sock: socket.socket, deadlines: Deadlines) -> None:
        self._sock = sock
        self._deadlines = deadlines

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(self._deadlines.clamp(timeout, httpcore.ReadTimeout))
            return self._sock.recv(max_bytes)
        except TimeoutError as err:  # socket.timeout; an OSError, so caught first
            raise httpcore.ReadTimeout(str(err) or "timed out") from err
        except OSError as err:
            raise httpcore.ReadError(str(err)) from err

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            while buffer:
                self._sock.settimeout(self._deadlines.clamp(timeout, httpcore.WriteTimeout))
                sent = self._sock.send(buffer)
                buffer = buffer[sent:]
        except TimeoutError as err:
            raise httpcore.WriteTimeout(str(err) or "timed out") from err
        except OSError as err:
            raise httpcore.WriteError(str(err)) from err

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        try:
            self._sock.settimeout(self._deadlines.clamp(timeout, httpcore.ConnectTimeout))
            # server_hostname is the URL's host: SNI and the certificate check are on the name, while the
            # socket is connected to the address the guard checked.
            wrapped = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as err:
            self.close()
            raise httpcore.ConnectTimeout(str(err) or "timed out") from err
        except OSError as err:  # ssl.SSLError included
            self.close()
            raise httpcore.ConnectError(str(err)) from err
        except BaseException:
            self.close()
            raise
        return DeadlineStream(wrapped, self._deadlines)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":  # httpcore asks before reusing a pooled connection: readable = closed
            if self._sock.fileno() == -1:
                return True
            readable, _, _ = select.select([self._sock], [], [], 0)
            return bool(readable)
        return None


class GuardedBackend(httpcore.NetworkBackend):
    """Connections only to addresses the guard accepts, made to the checked address itself."""

    def __init__(self, guard: AddressGuard, deadlines: Deadlines, connect: Connector = open_socket) -> None:
        self.guard = guard
        self.deadlines = deadlines
        self._connect = connect

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve ``host`` once (the guard refuses it with :class:`~pipeline.fetch.guard.BlockedAddress`),
        then connect to its addresses in order until one answers."""
        try:
            addresses = self.guard.addresses(host, port)
        except OSError as err:
            raise httpcore.ConnectError(f"{host}: {err}") from err
        failure: Exception = httpcore.ConnectError(f"{host}: no address to connect to")
        for address in addresses:
            wait = self.deadlines.clamp(timeout, httpcore.ConnectTimeout)
            try:
                sock = self._connect(str(address), port, wait, local_address)
            except TimeoutError as err:
                failure = httpcore.ConnectTimeout(f"{host} ({address}): {err or 'timed out'}")
            except OSError as err:
                failure = httpcore.ConnectError(f"{host} ({address}): {err}")
            else:
                try:
                    for option in socket_options or ():
                        sock.setsockopt(*option)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError as err:
                    sock.close()
                    raise httpcore.ConnectError(str(err)) from err
                return DeadlineStream(sock, self.deadlines)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("fetching over a Unix socket is not supported")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def guarded_transport(backend: GuardedBackend, limits: httpx.Limits) -> httpx.HTTPTransport:
    """An httpx transport whose connections all go through ``backend``.

    Raises:
        RuntimeError: this httpx keeps its connection pool elsewhere (a newer httpx): refusing to run
            unguarded rather than fetching past the guard.
    """
    import httpx  # noqa: PLC0415 - only a fetch needs it

    transport = httpx.HTTPTransport(limits=limits)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        raise RuntimeError(f"httpx {httpx.__version__}: no connection pool to put the address guard on")
    transport._pool.close()
    # httpx 0.28 has no network_backend argument (encode/httpx#3749 adds one): the pool is replaced by one
    # like it (same TLS context and limits) that connects through the guarded backend.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return transport
