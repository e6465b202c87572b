"""`decompress` inflates with zlib-ng: for any body, valid, cut, flipped or with a garbage gzip
header, the result or the error text must be exactly what the standard zlib gave."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from heron.errors import envelope
from heron.errors.envelope import decompress
from heron.exceptions import BadRequest


def _zlib_reference(body: bytes, encoding: str, limit: int = envelope.MAX_BODY) -> bytes | str:
    """The session-4 `decompress` for gzip and deflate (standard zlib); an error as its text."""

    def inflate(wbits: int) -> bytes:
        d = zlib.decompressobj(wbits)
        out = d.decompress(body, limit + 1)
        if len(out) > limit:
            raise BadRequest(f"body larger than {limit} bytes after decompression")
        if not d.eof:
            raise zlib.error("truncated compressed data")
        return out

    try:
        try:
            if encoding == "gzip":
                return inflate(16 + zlib.MAX_WBITS)
            try:
                return inflate(zlib.MAX_WBITS)
            except zlib.error:
                return inflate(-zlib.MAX_WBITS)
        except BadRequest:
            raise
        except Exception as exc:
            raise BadRequest(f"cannot decompress {encoding} body: {exc}") from None
    except BadRequest as exc:
        return str(exc)


def _ours(body: bytes, encoding: str, limit: int = envelope.MAX_BODY) -> bytes | str:
    try:
        return decompress(body, encoding, limit)
    except BadRequest as exc:
        return str(exc)


def _compress(data: bytes, how: str, level: int) -> bytes:
    if how == "gzip":
        return gzip.compress(data, level)
    c = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS if how == "zlib" else -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000) | st.text(max_size=2000).map(str.encode), st.sampled_from(["gzip", "zlib", "raw"]),
       st.integers(0, 9), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 255),
       st.binary(max_size=12))
@example(b'{"a": 1}\n' * 50, "gzip", 6, 10_000, 0, 0, b"")
@example(b'{"a": 1}\n' * 50, "gzip", 6, 10_000, 4, 0x5A, b"")  # garbage in the gzip header's mtime
@example(b'{"a": 1}\n' * 50, "gzip", 6, 10_000, 3, 0xFF, b"")  # header flags: bogus optional fields
@example(b'{"a": 1}\n' * 50, "gzip", 6, 10_000, 0, 0, b"trailing junk")
def test_inflate_results_and_errors_equal_standard_zlib(data: bytes, how: str, level: int, cut: int, pos: int,
                                                        xor: int, tail: bytes) -> None:
    body = bytearray(_compress(data, how, level))
    body = body[:max(1, cut % (len(body) + 1))] if cut < len(body) else body
    if xor and body:
        body[pos % len(body)] ^= xor
    raw = bytes(body) + tail
    encoding = "gzip" if how == "gzip" else "deflate"
    assert _ours(raw, encoding) == _zlib_reference(raw, encoding)
    assert _ours(raw, encoding, 100) == _zlib_reference(raw, encoding, 100)  # the zip-bomb bound


def test_inflate_uses_zlib_ng_and_two_gzip_members_keep_the_first() -> None:
    assert envelope._zlib.__name__ == "zlib_ng.zlib_ng"
    body = gzip.compress(b"first") + gzip.compress(b"second")
    assert decompress(body, "gzip") == b"first" == _zlib_reference(body, "gzip")
    # isal returned b"" for this one; zlib and zlib-ng both refuse it
    garbage = b"\x1f\x8b\x08\x00garbagegarbage" + gzip.compress(b'{"a": 1}' * 100)[10:]
    assert _ours(garbage, "gzip") == _zlib_reference(garbage, "gzip")
    assert str(_ours(garbage, "gzip")).startswith("cannot decompress gzip body: Error -3")
