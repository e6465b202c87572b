"""The array JSON encoder writes what Prometheus writes, and what Result.to_prometheus() means."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heron.promql import encode
from heron.promql.encode import format_time, format_values, query_body
from heron.promql.result import Result, Sample, Series, format_value


def test_values_match_go_formatting() -> None:
    rng = np.random.default_rng(7)
    mags = 10.0 ** rng.integers(-12, 22, 50_000)
    vals = np.concatenate([
        rng.random(50_000) * mags, -rng.random(5_000) * 1e3, np.round(rng.random(5_000) * 1e6),
        [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 1e-4, 9.9999e-5, 1.5e-4, 1e15, 1e15 - 1, 999999999999999.9,
         1e16, 1e21, 1e22, 123e13, 5e-324, 1.7976931348623157e308, 2.0 ** 53, -(2.0 ** 53) - 2,
         np.nan, np.inf, -np.inf],
    ])
    got = [b.decode() for b in format_values(vals)]
    want = [format_value(x) for x in vals.tolist()]
    assert got == want
    assert format_values(np.array([np.nan, np.inf, -np.inf, -0.0, 2.0, 0.5])) == \
        [b"NaN", b"+Inf", b"-Inf", b"-0", b"2", b"0.5"]
    assert format_values(np.array([1e-7, 1e20])) == [b"0.0000001", b"100000000000000000000"]


def test_timestamps_as_marshal_timestamp() -> None:
    assert format_time(1_700_000_000_000) == b"1700000000"
    assert format_time(1_700_000_000_007) == b"1700000000.007"
    assert format_time(1_700_000_000_500) == b"1700000000.500"
    assert format_time(-1_500) == b"-1.500"
    assert format_time(0) == b"0"


def _same(body: bytes, res: Result) -> None:
    got = json.loads(body)
    want = res.to_prometheus()
    assert got["status"] == "success"
    assert got["data"]["resultType"] == want["resultType"]
    assert json.loads(json.dumps(want["result"])) == got["data"]["result"]


def test_matrix_body_equals_to_prometheus() -> None:
    grid = np.arange(1_000_000, 1_000_000 + 10 * 15_000, 15_000, dtype=np.int64)
    series = [
        Series({"__name__": "a", "job": "x\"y\\z ü"}, times_ms=grid, values=np.linspace(0, 1, 10)),
        Series({"job": "b"}, times_ms=grid[[1, 4]], values=np.array([np.nan, np.inf])),
        Series({}, [(1000.5, 3.0), (1001.25, -0.0)]),  # built from points, off the grid
    ]
    res = Result("matrix", matrix=series, grid_ms=grid, warnings=["w"], infos=["i"])
    body = query_body(res, grid=grid)
    _same(body, res)
    doc = json.loads(body)
    assert doc["warnings"] == ["w"] and doc["infos"] == ["i"]
    assert b'"values":[[1000.500,"3"],[1001.250,"-0"]]' in body
    assert b'[1015,"NaN"],[1060,"+Inf"]' in body
    limited = json.loads(query_body(res, limit=1, grid=grid))
    assert len(limited["data"]["result"]) == 1 and "results truncated due to limit" in limited["warnings"]


def test_vector_scalar_string_bodies() -> None:
    vec = Result("vector", vector=[Sample({"a": "1"}, 1700000000.123, 0.25), Sample({}, 1700000000.123, 7.0)])
    _same(query_body(vec), vec)
    assert b'"value":[1700000000.123,"7"]' in query_body(vec)
    sc = Result("scalar", scalar=(12.5, -np.inf))
    assert json.loads(query_body(sc))["data"]["result"] == [12.5, "-Inf"]
    st = Result("string", string=(3.0, 'he said "hi"'))
    assert json.loads(query_body(st))["data"]["result"] == [3, 'he said "hi"']
    assert json.loads(query_body(Result("matrix")))["data"]["result"] == []


def test_matrix_body_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encode, "CHUNK_POINTS", 3)
    grid = np.arange(0, 60_000 * 5, 60_000, dtype=np.int64)
    rng = np.random.default_rng(1)
    series = [Series({"i": str(i)}, times_ms=grid if i % 3 else grid[1:3],
                     values=rng.random(5 if i % 3 else 2) * 10 ** i) for i in range(12)]
    series.append(Series({"empty": "1"}, []))
    res = Result("matrix", matrix=series, grid_ms=grid)
    _same(query_body(res, grid=grid), res)
