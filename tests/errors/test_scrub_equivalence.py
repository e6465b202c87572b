"""The scrubber walks frame locals and breadcrumbs in place, with remembered `text` results:
whatever the event, the JSON it stores must be byte for byte what the session-4 scrubber
(`scrub_reference.py`, frozen) made of it."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from heron.errors.normalize import normalize
from heron.errors.rows import dumps_bytes
from heron.errors.scrub import FILTERED, Scrubber

from . import scrub_reference
from .test_fuzz import _scrub_values, _texts, _var_values, events, json_values

NOW = 1_700_000_000.0
_crumbs = st.lists(st.fixed_dictionaries(
    {"timestamp": st.floats(NOW - 100, NOW), "category": _texts, "type": st.sampled_from(["http", "default"])},
    optional={"message": _texts, "data": st.dictionaries(_texts, _scrub_values, max_size=4) | json_values}),
    max_size=6)
_frame = st.fixed_dictionaries(
    {"function": st.sampled_from(["f", "handle", "password_reset"]), "lineno": st.integers(1, 5)},
    optional={"vars": st.dictionaries(_texts | st.sampled_from(["module", "filename", "self", "token"]),
                                      _var_values, max_size=5) | _var_values,
              "module": st.sampled_from(["app.views", "app.auth"]), "context_line": _texts})
_event = st.fixed_dictionaries(
    {"exception": st.fixed_dictionaries({"values": st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["ValueError", "KeyError"]), "value": _texts,
         "stacktrace": st.fixed_dictionaries({"frames": st.lists(_frame, max_size=5)})},
        optional={"mechanism": st.dictionaries(_texts, _scrub_values, max_size=3)}), min_size=1, max_size=2)})},
    optional={"breadcrumbs": st.fixed_dictionaries({"values": _crumbs}) | _crumbs,
              "threads": st.fixed_dictionaries({"values": st.lists(st.fixed_dictionaries(
                  {"id": st.integers(0, 3), "stacktrace": st.fixed_dictionaries({"frames": st.lists(_frame,
                                                                                                    max_size=3)})},
                  optional={"name": _texts, "extra": _scrub_values}), max_size=2)}),
              "request": st.fixed_dictionaries({"url": _texts}, optional={
                  "headers": st.dictionaries(_texts, _texts, max_size=3), "data": _scrub_values,
                  "query_string": _texts, "cookies": _texts}),
              "extra": st.dictionaries(_texts, _scrub_values, max_size=4),
              "contexts": st.dictionaries(_texts, st.dictionaries(_texts, _scrub_values, max_size=3), max_size=3),
              "tags": st.dictionaries(_texts, _texts, max_size=3),
              "user": st.fixed_dictionaries({"id": _texts}, optional={"data": _scrub_values})})


def _both(ev: dict[str, Any], *config: Any) -> tuple[bytes | str, bytes | str]:
    """The stored JSON (`data` column) after each scrubber, or the error both must raise."""

    def run(scrubber: Any) -> bytes | str:
        mine = copy.deepcopy(ev)
        try:
            scrubber(*config).event(mine)
        except Exception as exc:  # hand-built events only: normalized ones never raise
            return repr(exc)
        return dumps_bytes(mine)

    return run(scrub_reference.Scrubber), run(Scrubber)


@settings(max_examples=400, deadline=None)
@given(_event | events, st.sampled_from([(), (True, ("password", "token", "vars")),
                                          (True, ("password",), frozenset({"token"}), True)]))
@example({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
    {"function": "f", "vars": {"password": "hunter2", "auth": "Bearer abcdefghijkl", "n": 4,
                               "pairs": [["api_key", "k"], ["q", "4111 1111 1111 1111"]],
                               "module": {"password": "stays"}, "empty": {"token": ""}}}]}}]},
          "breadcrumbs": {"values": [{"timestamp": NOW, "data": {"url": "https://u:pw@h/cb?token=abc"},
                                      "message": "card 4111-1111-1111-1111"}]}}, ())
@example({"tags": {"token": "", "shard": "3", "note": "Bearer abcdefghijkl"}, "extra": {"x": 1}}, ())
def test_scrubbed_events_are_byte_identical_to_the_reference(raw: dict[str, Any], config: tuple[Any, ...]) -> None:
    ev = normalize(raw, NOW, "127.0.0.1")
    want, got = _both(ev, *config)
    assert got == want


@settings(max_examples=300, deadline=None)
@given(st.lists(_var_values, min_size=1, max_size=4))
def test_in_place_walk_equals_value(values: list[Any]) -> None:
    """`_walk` (in place) serializes as `value` (copying), at every starting depth, the same
    string met twice included (the second time from the remembered results)."""
    scrub = Scrubber()
    for depth in (0, 1, 19, 21):
        for v in values + values:
            want = scrub.value(json.loads(json.dumps(v)), depth)
            assert dumps_bytes(scrub._walk(json.loads(json.dumps(v)), depth)) == dumps_bytes(want)


def test_hand_built_events_the_fast_paths_leave_to_the_rules() -> None:
    """Not normalized: tags that are not all strings, breadcrumbs that are not dicts."""
    for ev in ({"tags": {"n": 4, "token": "t"}}, {"tags": {"n": 4}}, {"tags": [["token", "t"]]},
               {"breadcrumbs": {"values": ["password=secret", {"password": "x"}, [["auth", "y"]]]}},
               {"tags": {"token": ""}, "breadcrumbs": [{"token": ""}, {"data": {"pwd": None}}]}):
        want, got = _both(ev)
        assert got == want


def test_the_bench_event_scrubs_as_the_reference_did_and_filters_what_it_should() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from errors_ingest import payload  # type: ignore[import-not-found]

    for i in range(3):
        ev = normalize(orjson.loads(orjson.dumps(payload(i))), time.time(), "10.0.0.1")
        want, got = _both(ev)
        assert got == want
        assert isinstance(got, bytes)
        out = orjson.loads(got)
        frames = out["exception"]["values"][0]["stacktrace"]["frames"]
        assert {f["vars"]["password"] for f in frames} == {FILTERED}
        assert out["request"]["headers"]["Authorization"] == FILTERED


def test_remembered_text_results_stay_bounded() -> None:
    scrub = Scrubber()
    for i in range(50_010):
        assert scrub._text(f"value number {i}") == f"value number {i}"
    assert len(scrub._texts) <= 50_000
    long = "x" * 513 + " token abcdefghijkl"
    assert scrub._text(long) == "x" * 513 + f" token {FILTERED}" and long not in scrub._texts
    assert scrub._text("token abcdefghijkl") == f"token {FILTERED}"
