"""Request bodies as Sentry SDKs send them: compressed, and in the envelope format.

An envelope is a JSON header line, then items, each a JSON header line and a payload that is
either `length` bytes long or runs to the next newline. Every malformed input raises
`BadRequest` with the reason and the byte offset, never anything else.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass, field
from typing import Any

import cramjam
import orjson
from zlib_ng import zlib_ng as _zlib  # zlib's inflate results and error texts, at ~2x its speed

from heron.exceptions import BadRequest

_ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error, _zlib.error)  # type: ignore[assignment]  # stub: an instance

MAX_BODY = 40 << 20
"""Largest body accepted after decompression (Relay's default envelope limit is 200 MB; a single
process keeps a tighter bound so a zip bomb cannot exhaust memory)."""


@dataclass
class Item:
    type: str
    headers: dict[str, Any]
    payload: bytes
    """(A memoryview of the body's bytes when parsed with `view=True`.)"""

    def json(self) -> Any:
        try:
            return orjson.loads(self.payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"{self.type} item: payload is not valid JSON: {exc}") from None


@dataclass
class Envelope:
    headers: dict[str, Any]
    items: list[Item] = field(default_factory=list)


def decompress(body: bytes, encoding: str | None, limit: int = MAX_BODY) -> bytes:
    """Undo Content-Encoding (gzip, deflate — zlib or raw —, br, identity)."""
    enc = (encoding or "identity").strip().lower()
    try:
        if enc in ("", "identity"):
            out = body
        elif enc in ("gzip", "x-gzip"):
            out = _inflate(body, 16 + zlib.MAX_WBITS, limit)
        elif enc == "deflate":
            try:
                out = _inflate(body, zlib.MAX_WBITS, limit)
            except _ZLIB_ERRORS:
                out = _inflate(body, -zlib.MAX_WBITS, limit)
        elif enc == "br":
            out = bytes(cramjam.brotli.decompress(body))
        elif enc in ("zstd", "zst"):
            out = bytes(cramjam.zstd.decompress(body))
        else:
            raise BadRequest(f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or br)")
    except BadRequest:
        raise
    except Exception as exc:  # zlib.error, cramjam.DecompressionError
        raise BadRequest(f"cannot decompress {enc} body: {exc}") from None
    if len(out) > limit:
        raise BadRequest(f"body larger than {limit} bytes after decompression")
    return out


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    d = _zlib.decompressobj(wbits)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise BadRequest(f"body larger than {limit} bytes after decompression")
    if not d.eof:
        raise zlib.error("truncated compressed data")
    return out


def _json_line(data: bytes, what: str, offset: int) -> dict[str, Any]:
    try:
        value = orjson.loads(data) if data.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} at byte {offset} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} at byte {offset} must be a JSON object")
    return value


def parse_envelope(data: bytes, view: bool = False) -> Envelope:
    """Split an envelope into its header and items. `view`: payloads are memoryviews of `data`,
    not copies (the ack path only looks at their first bytes: a 40 KB copy per event saved)."""
    whole: Any = memoryview(data) if view else data
    end = data.find(b"\n")
    first = data if end < 0 else data[:end]
    env = Envelope(_json_line(first, "envelope header", 0))
    pos = len(data) if end < 0 else end + 1
    while pos < len(data):
        nl = data.find(b"\n", pos)
        line = data[pos:] if nl < 0 else data[pos:nl]
        if not line.strip():  # blank separator lines and the trailing newline
            pos = len(data) if nl < 0 else nl + 1
            continue
        headers = _json_line(line, "item header", pos)
        kind = headers.get("type")
        if not isinstance(kind, str) or not kind:
            raise BadRequest(f"item header at byte {pos} has no type")
        pos = len(data) if nl < 0 else nl + 1
        length = headers.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise BadRequest(f"{kind} item at byte {pos}: length must be a non-negative integer")
            if pos + length > len(data):
                raise BadRequest(f"{kind} item at byte {pos}: length {length} runs past the end "
                                 f"of the envelope ({len(data) - pos} bytes left)")
            payload = whole[pos:pos + length]
            pos += length
            if pos < len(data) and data[pos:pos + 1] == b"\n":
                pos += 1
        else:
            nl = data.find(b"\n", pos)
            payload = whole[pos:] if nl < 0 else whole[pos:nl]
            pos = len(data) if nl < 0 else nl + 1
        env.items.append(Item(kind, headers, payload))
    return env


def first_byte(payload: bytes | memoryview) -> bytes:
    """The first byte after leading whitespace (b"" if none), without copying a whole payload."""
    head = bytes(payload[:64]).lstrip()
    return head[:1] if head or len(payload) <= 64 else bytes(payload).lstrip()[:1]


def parse_store_body(data: bytes) -> dict[str, Any]:
    """The legacy /store/ body: a JSON event, or (very old SDKs) base64 of zlib'd JSON."""
    stripped = data.lstrip()
    if stripped[:1] != b"{":
        try:
            data = zlib.decompress(base64.b64decode(stripped, validate=False))
        except (binascii.Error, zlib.error, ValueError):
            raise BadRequest("store body is neither a JSON event nor base64 zlib JSON") from None
    try:
        event = orjson.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"store body is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise BadRequest("store body must be a JSON object (an event)")
    return event
