"""The fields of every TimeSeries of a WriteRequest, found for all series at once.

A Python loop over each series' fields (5 labels + 1 sample is 6 varint reads and branches per
series) was most of the cost of decoding a request of known series. Here all series advance in
lockstep: step k reads the tag and length of the k-th field of every series still open, with
numpy; the loop runs as many times as the longest series has fields. The few series with many
more fields than the rest (a backfill of many samples) finish in a scalar loop so that one long
series does not cost a numpy step per field.
"""

from __future__ import annotations

import numpy as np

from heron.exceptions import BadRequest

LOCKSTEP_MIN_LIVE = 8  # below this many open series (after a few steps) the scalar loop is cheaper


class Unusual(Exception):
    """A layout the array walk does not handle (multi-byte tags, non length-delimited fields)."""


def _varints(arr: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of up to 5 bytes (lengths < 2^35) at each of `pos`: (value, position after)."""
    value = np.zeros(len(pos), dtype=np.int64)
    done = np.zeros(len(pos), dtype=bool)
    after = pos.copy()
    for k in range(5):
        b = arr[pos + k].astype(np.int64)
        take = ~done
        value |= np.where(take, (b & 0x7F) << (7 * k), 0)
        ends = take & (b < 0x80)
        after = np.where(ends, pos + k + 1, after)
        done |= ends
        if done.all():
            return value, after
    raise Unusual


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """One protobuf varint at `pos`: (value, position after it)."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes, arr: np.ndarray, starts: np.ndarray, ends: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every field inside the messages `buf[starts[i]:ends[i]]`, series-major, in wire order:
    (series index, tag byte, body start, body length). `arr` is `buf` as uint8 plus 20 zero bytes."""
    pos = starts.astype(np.int64)
    live = np.flatnonzero(pos < ends)
    parts: list[tuple[np.ndarray, ...]] = []
    step = 0
    while len(live):
        if step >= 4 and len(live) < LOCKSTEP_MIN_LIVE:
            parts.append(_scalar(buf, live, pos[live], ends[live]))
            break
        p = pos[live]
        tag = arr[p]
        if ((tag & 7) != 2).any() or (tag >= 0x80).any():
            raise Unusual
        length, body = _varints(arr, p + 1)
        end = body + length
        if (end > ends[live]).any():
            raise BadRequest("protobuf: cannot decode WriteRequest (bad TimeSeries length)")
        parts.append((live, tag.astype(np.int64), body, length))
        pos[live] = end
        live = live[end < ends[live]]
        step += 1
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty
    s, tag, body, length = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(s, kind="stable")  # steps are in wire order, so stable keeps it per series
    return s[order], tag[order], body[order], length[order]


def _scalar(buf: bytes, series: np.ndarray, pos: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
    out_s: list[int] = []
    out_t: list[int] = []
    out_b: list[int] = []
    out_l: list[int] = []
    for s, p, e in zip(series.tolist(), pos.tolist(), ends.tolist(), strict=True):
        while p < e:
            tag = buf[p]
            if tag & 7 != 2 or tag >= 0x80:
                raise Unusual
            length, body = varint(buf, p + 1)
            p = body + length
            if p > e:
                raise BadRequest("protobuf: cannot decode WriteRequest (bad TimeSeries length)")
            out_s.append(s)
            out_t.append(tag)
            out_b.append(body)
            out_l.append(length)
    return tuple(np.asarray(x, dtype=np.int64) for x in (out_s, out_t, out_b, out_l))
