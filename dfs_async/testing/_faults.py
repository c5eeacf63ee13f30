"""Faults: the misbehaviours the emulator plays for given request numbers, and how each is played.

`Fault` is the public value (`emu.inject(3, Fault.http_status(502))`). A few faults only change
how the normal answer is made (`SHAPING`: a delay, a head insert, a parameter ignored); the
emulator plays those itself. Every other one replaces the answer, and `play` writes it: a
refusal at the envelope or in the task, a bare HTTP status, a proxy's HTML page, a body cut
short or never ending, a connection closed at some point of the exchange.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Final

import attrs
from aiohttp import web

from ._requests import RATE_LIMITED
from ._responses import Answer, envelope, phrase, proxy_page

__all__ = ["SHAPING", "Fault", "Played", "drop", "json_response", "play"]

_FAULT_NAMES: Final = (
    "reset_before_headers",
    "reset_during_body",
    "delay",
    "http_status",
    "truncated_json",
    "html",
    "envelope_error",
    "task_error",
    "rate_limited",
    "insert_head",
    "malformed_status_line",
    "huge_body",
    "gzip_bomb",
    "ignore_offset",
    "ignore_limit",
)

#: The faults that shape the normal answer instead of replacing it.
SHAPING: Final = frozenset({"delay", "insert_head", "ignore_offset", "ignore_limit"})

#: What was sent: the response, the DataForSEO code it carries and its HTTP status (None where
#: the connection was closed before either was sent).
Played = tuple[web.StreamResponse, int | None, int | None]


@attrs.frozen(kw_only=True)
class Fault:
    """A misbehaviour the emulator plays for one request number, built by the class methods."""

    name: str = attrs.field(validator=attrs.validators.in_(_FAULT_NAMES))
    seconds: float = 0.0
    status: int = 0
    code: int = 0
    message: str = ""
    count: int = 0

    @classmethod
    def reset_before_headers(cls) -> Fault:
        """Close the connection without answering."""
        return cls(name="reset_before_headers")

    @classmethod
    def reset_during_body(cls) -> Fault:
        """Send the headers (full Content-Length) and half the body, then close the connection."""
        return cls(name="reset_during_body")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait `seconds` on the loop clock, then answer normally."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return cls(name="delay", seconds=float(seconds))

    @classmethod
    def http_status(cls, code: int) -> Fault:
        """Answer this HTTP status with a short plain-text body."""
        if not 100 <= code <= 599:
            raise ValueError("code must be an HTTP status")
        return cls(name="http_status", status=code)

    @classmethod
    def truncated_json(cls) -> Fault:
        """A complete HTTP 200 message whose JSON body is cut in the middle."""
        return cls(name="truncated_json")

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """An HTML error page such as a proxy in front of the API sends."""
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status")
        return cls(name="html", status=status)

    @classmethod
    def envelope_error(cls, code: int = 50000, message: str = "Internal Error.") -> Fault:
        """This DataForSEO status at the envelope, `tasks` null."""
        return cls(name="envelope_error", code=code, message=message)

    @classmethod
    def task_error(cls, code: int = 50000, message: str = "Internal Error.") -> Fault:
        """Envelope 20000 whose only task carries this status and a null result."""
        return cls(name="task_error", code=code, message=message)

    @classmethod
    def rate_limited(cls) -> Fault:
        """40202 at the envelope whatever the window holds; the request takes no slot."""
        return cls(name="rate_limited")

    @classmethod
    def insert_head(cls, n: int) -> Fault:
        """Add `n` records newer than all others to the endpoint's data set, then answer."""
        if n < 1:
            raise ValueError("n must be >= 1")
        return cls(name="insert_head", count=n)

    @classmethod
    def malformed_status_line(cls) -> Fault:
        """Answer with a status line that is not HTTP (``HTTP/1.1 2OO OK``), then close."""
        return cls(name="malformed_status_line")

    @classmethod
    def huge_body(cls, size: int, *, declared: bool = True) -> Fault:
        """A 200 reply of `size` bytes, streamed; with ``declared=False`` it is chunked, with
        no Content-Length to warn the client."""
        if size < 1:
            raise ValueError("size must be >= 1")
        return cls(name="huge_body", count=size, status=1 if declared else 0)

    @classmethod
    def gzip_bomb(cls, inflated: int) -> Fault:
        """A chunked ``Content-Encoding: gzip`` reply that inflates to `inflated` bytes of
        zeros (about a thousand times what is sent)."""
        if inflated < 1:
            raise ValueError("inflated must be >= 1")
        return cls(name="gzip_bomb", count=inflated)

    @classmethod
    def ignore_offset(cls) -> Fault:
        """Answer as if the request had no ``offset``: the first page, whatever was asked."""
        return cls(name="ignore_offset")

    @classmethod
    def ignore_limit(cls) -> Fault:
        """Answer as if the request had no ``limit``: up to 1000 records, whatever was asked."""
        return cls(name="ignore_limit")


async def play(
    request: web.BaseRequest,
    fault: Fault,
    *,
    accepted_answer: Callable[[], Answer],
    task_refused: Callable[[int, str], bytes],
    took: Callable[[], str],
    headers: dict[str, str],
) -> Played:
    """Send the answer that replaces the normal one (a fault outside `SHAPING`).

    `accepted_answer` is the answer the call would get had it taken a slot, for the faults that
    break a normal answer; `task_refused` is the one-task document refusing the posted task with
    this status; `took` is the ``time`` field now.
    """
    name = fault.name
    if name == "reset_before_headers":
        return drop(request), None, None
    if name == "malformed_status_line":
        if request.transport is not None:
            request.transport.write(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n")
        return drop(request), None, None
    if name == "huge_body" or name == "gzip_bomb":
        return await _stream_big(request, fault), None, 200
    if name == "reset_during_body":
        answer = accepted_answer()
        response = web.StreamResponse(status=answer.status, headers=headers)
        response.content_type = "application/json"
        response.content_length = len(answer.body)
        await response.prepare(request)
        await response.write(answer.body[: len(answer.body) // 2])
        if request.transport is not None:
            request.transport.close()
        return response, None, answer.status
    if name == "truncated_json":
        answer = accepted_answer()
        cut = answer.body[: len(answer.body) // 2]
        return json_response(answer.status, cut, headers), None, answer.status
    if name == "html":
        page = proxy_page(fault.status)
        response = web.Response(status=fault.status, text=page, content_type="text/html")
        return response, None, fault.status
    if name == "http_status":
        text = f"{fault.status} {phrase(fault.status)}\n"
        response = web.Response(status=fault.status, text=text, content_type="text/plain")
        return response, None, fault.status
    if name == "rate_limited":
        body = envelope(*RATE_LIMITED, took())
        return json_response(200, body, headers), RATE_LIMITED[0], 200
    if name == "envelope_error":
        body = envelope(fault.code, fault.message, took())
        return json_response(200, body, headers), fault.code, 200
    if name == "task_error":
        body = task_refused(fault.code, fault.message)
        return json_response(200, body, headers), 20000, 200
    raise ValueError(f"fault {name!r} shapes the normal answer; the emulator plays it")


def drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection before anything is written; return a response aiohttp cannot send."""
    # aiohttp then fails to send the returned response with a ConnectionError, which it treats
    # as a client disconnection.
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def json_response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    """`body` as ``application/json; charset=utf-8`` with this status and these headers."""
    return web.Response(
        status=status,
        body=body,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


async def _stream_big(request: web.BaseRequest, fault: Fault) -> web.StreamResponse:
    """Stream a huge body (or a gzip bomb) until done or the client hangs up."""
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    block = 1 << 20
    if fault.name == "huge_body":
        head = b'{"status_code": 20000, "padding": "'
        pieces = _padding(head, fault.count, block)
        if fault.status:
            response.content_length = fault.count
    else:
        response.headers["Content-Encoding"] = "gzip"
        pieces = _gzip_zeros(fault.count, block)
    try:
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            # Loopback buffers take megabytes without blocking: yield, so a client in
            # this loop gets to read (and hang up) before everything is sent.
            await asyncio.sleep(0)
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading: what the fault is for
    return response


def _padding(head: bytes, size: int, block: int) -> Iterator[bytes]:
    """`size` bytes: `head`, then spaces, in pieces of at most `block`."""
    first = head[:size]
    yield first
    left = size - len(first)
    filler = b" " * block
    while left > 0:
        yield filler[: min(left, block)]
        left -= block


def _gzip_zeros(size: int, block: int) -> Iterator[bytes]:
    """A gzip member of `size` zero bytes, compressed once per `block` and then repeated.

    After a full flush deflate starts afresh, so each block of zeros compresses to the same
    bytes. The CRC trailer is computed only once all the rest is sent: a client that stops
    early (the point of the fault) costs the emulator no CRC work.
    """
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip header, no name, no time
    zeros = bytes(block)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    whole = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks, left = divmod(size, block)
    for _ in range(blocks):
        yield whole
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    yield last.compress(bytes(left)) + last.flush()
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(left), crc)
    yield struct.pack("<II", crc, size & 0xFFFFFFFF)
