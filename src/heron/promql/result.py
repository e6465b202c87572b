"""What a PromQL evaluation returns: the four Prometheus value types as small typed objects.

The rules engine, templates (`query`), the UI and the HTTP API all consume `Result`; labels are
plain dicts (`__name__` included when the series keeps its name). Points are (seconds, value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ResultType = Literal["vector", "matrix", "scalar", "string"]


@dataclass
class Sample:
    """One point of an instant vector."""

    labels: dict[str, str]
    time: float
    value: float


class Series:
    """One series of a range result: points as (seconds, value) pairs in time order.

    The engine builds it from arrays (`times_ms` int64, `values` float64) and the JSON encoder
    reads those directly; the `points` tuples are only built when someone asks for them."""

    __slots__ = ("_points", "labels", "times_ms", "values")

    def __init__(self, labels: dict[str, str], points: list[tuple[float, float]] | None = None,
                 times_ms: np.ndarray | None = None, values: np.ndarray | None = None) -> None:
        self.labels = labels
        self._points = points
        if points is not None and times_ms is None:
            times_ms = np.array([round(t * 1000) for t, _ in points], np.int64)
            values = np.array([v for _, v in points], np.float64)
        self.times_ms: np.ndarray = times_ms if times_ms is not None else np.empty(0, np.int64)
        self.values: np.ndarray = values if values is not None else np.empty(0)

    @property
    def points(self) -> list[tuple[float, float]]:
        if self._points is None:
            self._points = list(zip((self.times_ms / 1000.0).tolist(), self.values.tolist(), strict=True))
        return self._points

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Series) and self.labels == other.labels and self.points == other.points

    def __repr__(self) -> str:
        return f"Series({self.labels!r}, {len(self.values)} points)"


@dataclass
class Result:
    """An evaluation result. Exactly one of `vector`, `matrix`, `scalar`, `string` is meaningful,
    named by `type`. `ordered` is true when Prometheus defines the order of a vector (sort, topk)."""

    type: ResultType
    vector: list[Sample] = field(default_factory=list)
    matrix: list[Series] = field(default_factory=list)
    scalar: tuple[float, float] | None = None
    string: tuple[float, str] | None = None
    ordered: bool = False
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    # The step times (ms) of a range result: the encoder formats each of them once.
    grid_ms: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_prometheus(self) -> dict[str, Any]:
        """The `data` object of Prometheus' /api/v1/query(_range) reply."""
        if self.type == "vector":
            res: Any = [{"metric": s.labels, "value": [s.time, format_value(s.value)]}
                        for s in self.vector]
        elif self.type == "matrix":
            res = [{"metric": s.labels, "values": [[t, format_value(v)] for t, v in s.points]}
                   for s in self.matrix]
        elif self.type == "scalar":
            assert self.scalar is not None
            res = [self.scalar[0], format_value(self.scalar[1])]
        else:
            assert self.string is not None
            res = [self.string[0], self.string[1]]
        return {"resultType": self.type, "result": res}


def format_value(v: float) -> str:
    """Prometheus' float formatting: Go's strconv 'f' with the shortest exact digits, no exponent."""
    r = repr(v)
    if "e" not in r and "n" not in r:  # the common case: repr is already Go's shortest 'f' form
        return r[:-2] if r.endswith(".0") else r
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(np.format_float_positional(v, unique=True, trim="-"))
