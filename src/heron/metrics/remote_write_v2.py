"""Prometheus remote write 2.0: `io.prometheus.write.v2.Request` (symbols table + label refs).

Labels are pairs of indexes into the request's string table; metadata (type, help, unit) rides
on each series instead of a separate list. Decoded into the same `DecodedWrite` as 1.0. Native
histograms are counted (reported in the response headers as not written), not stored yet.
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError

from heron.exceptions import BadRequest
from heron.metrics.model import Labels, labels_from
from heron.metrics.proto import write_v2_pb2
from heron.metrics.remote_write import METADATA_TYPES, DecodedWrite, _validate

PROTO_V1 = "prometheus.WriteRequest"
PROTO_V2 = "io.prometheus.write.v2.Request"


def proto_of(content_type: str | None) -> str:
    """The `proto=` parameter of Content-Type (1.0 when absent); BadRequest for other media."""
    if not content_type:
        return PROTO_V1
    media, *params = [p.strip() for p in content_type.split(";")]
    if media.lower() != "application/x-protobuf":
        raise BadRequest(f"unsupported Content-Type {content_type!r}; remote write uses application/x-protobuf")
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "proto":
            value = value.strip().strip('"')
            if value not in (PROTO_V1, PROTO_V2):
                raise BadRequest(f"unsupported remote write message {value!r} (use {PROTO_V1} or {PROTO_V2})")
            return value
    return PROTO_V1


def decode_v2(body: bytes) -> DecodedWrite:
    """The wire-walking decoder; the protobuf one for whatever it leaves (and for errors, whose
    messages it words)."""
    from heron.metrics import remote_write_v2_wire as wire
    from heron.metrics.remote_write import _Fallback

    try:
        return wire.decode(body)
    except (wire.Fallback, _Fallback, BadRequest, DecodeError, IndexError, ValueError):
        return decode_v2_protobuf(body)


def decode_v2_protobuf(body: bytes) -> DecodedWrite:
    req = write_v2_pb2.Request()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"protobuf: cannot decode io.prometheus.write.v2.Request ({exc})") from exc
    symbols = list(req.symbols)
    if symbols and symbols[0] != "":
        raise BadRequest("symbols[0] must be the empty string (remote write 2.0)")
    n_sym = len(symbols)
    series: list[Labels] = []
    counts = np.empty(len(req.timeseries), dtype=np.int64)
    ts_parts: list[int] = []
    val_parts: list[float] = []
    metadata: dict[str, tuple[str, str, str, str]] = {}
    hist = 0
    exemplars: list[tuple[int, Labels, int, float]] = []
    for i, t in enumerate(req.timeseries):
        refs = list(t.labels_refs)
        if len(refs) % 2:
            raise BadRequest(f"timeseries {i}: odd number of labels_refs")
        if refs and max(refs) >= n_sym:
            raise BadRequest(f"timeseries {i}: labels_refs point past the symbols table ({n_sym})")
        labels = _validate([(symbols[refs[j]], symbols[refs[j + 1]]) for j in range(0, len(refs), 2)], i)
        series.append(labels)
        counts[i] = len(t.samples)
        for s in t.samples:
            ts_parts.append(s.timestamp)
            val_parts.append(s.value)
        hist += len(t.histograms)
        for e in t.exemplars:
            eref = list(e.labels_refs)
            if len(eref) % 2 or (eref and max(eref) >= n_sym):
                raise BadRequest(f"timeseries {i}: exemplar labels_refs odd or past the symbols table ({n_sym})")
            exemplars.append((i, labels_from([(symbols[eref[j]], symbols[eref[j + 1]])
                                              for j in range(0, len(eref), 2)]), e.timestamp, e.value))
        md = t.metadata
        if md.type or md.help_ref or md.unit_ref:
            if max(md.help_ref, md.unit_ref) >= n_sym:
                raise BadRequest(f"timeseries {i}: metadata refs point past the symbols table")
            name = dict(labels)["__name__"]
            metadata[name] = (name, METADATA_TYPES.get(md.type, "unknown"), symbols[md.help_ref],
                              symbols[md.unit_ref])
    return DecodedWrite(series, counts, np.asarray(ts_parts, dtype=np.int64),
                        np.asarray(val_parts, dtype=np.float64), list(metadata.values()), hist,
                        exemplars=exemplars)
