"""Decompression with a bounded output: a compressed body is inflated a piece at a time, each piece no longer
than asked, so a size cap counts decompressed bytes and a gzip bomb is stopped a few bytes past it."""

from __future__ import annotations

import zlib
from typing import Any

STEP = 1024 * 1024  # the most one call inflates at once, when far below the cap
ENCODINGS = ("gzip", "deflate")  # what the session's Accept-Encoding offers, and all that is decoded


class UnsupportedEncoding(ValueError):
    """A Content-Encoding this module does not decode (the session never asked for it)."""


class BodyDecoder:
    """Decodes a body's ``Content-Encoding`` (``gzip``, ``deflate`` or none) a bounded piece at a time.

    Example:
        >>> decoder = BodyDecoder("gzip")  # doctest: +SKIP
        >>> for chunk in response.iter_raw():
        ...     decoder.feed(chunk)
        ...     while piece := decoder.read(cap - size + 1):  # nothing is inflated past what is asked
        ...         size += len(piece)
    """

    def __init__(self, content_encoding: str) -> None:
        names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
        names = [n for n in names if n != "identity"]
        if len(names) > 1 or (names and names[0] not in (*ENCODINGS, "x-gzip")):
            raise UnsupportedEncoding(
                f"Content-Encoding {content_encoding!r} (only gzip and deflate are decoded)"
            )
        self.encoding = names[0] if names else ""
        self._pending = b""
        self._inflater: Any = None
        self._format_settled = False
        if self.encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self.encoding == "deflate":
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        """Take the next raw bytes of the body (call :meth:`read` until it gives ``b""`` first)."""
        self._pending += data

    def read(self, limit: int) -> bytes:
        """The next decoded bytes, at most ``min(limit, STEP)``; ``b""`` once the fed bytes are used up.

        Raises:
            zlib.error: the data is not valid for the encoding.
        """
        size = max(1, min(limit, STEP))
        if self._inflater is None:
            taken, self._pending = self._pending[:size], self._pending[size:]
            return taken
        try:
            # With no input left zlib may still hold output of a piece cut short: asking again drains it.
            piece: bytes = self._inflater.decompress(self._pending, size)
        except zlib.error:
            if self.encoding != "deflate" or self._format_settled:
                raise
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate (httpx reads both).
            self._format_settled = True
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            piece = self._inflater.decompress(self._pending, size)
        self._format_settled = True
        self._pending = self._inflater.unconsumed_tail
        return piece

    def flush(self) -> bytes:
        """What the decoder still holds at the end of the body (little: :meth:`read` drains as it goes)."""
        return self._inflater.flush() if self._inflater is not None else b""


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """The gzip ``data`` decompressed (every member of a multi-member file), refused past ``cap`` bytes.

    At most ``cap + 1`` bytes are ever inflated.

    Raises:
        ValueError: the decompressed size is over ``cap``.
        EOFError: the data ends inside a member.
        zlib.error: the data is not gzip.
    """
    out = bytearray()
    pending = data
    while pending:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        while True:
            piece = inflater.decompress(pending, cap + 1 - len(out))
            out += piece
            if len(out) > cap:
                raise ValueError(f"decompressed size over cap {cap} bytes")
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and not piece):
                break
        if not inflater.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        pending = inflater.unused_data.lstrip(b"\x00")  # gzip files may be padded with zeros
    return bytes(out)
