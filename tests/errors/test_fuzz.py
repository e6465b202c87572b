"""Hypothesis against the envelope parser and the whole ingest path: no input crashes the
server (only 200, 400 or 429 answers) and stored data stays what valid events made it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from heron.errors.envelope import parse_envelope
from heron.errors.grouping import group
from heron.errors.ingest import tracking
from heron.errors.normalize import normalize
from heron.errors.scrub import Scrubber
from heron.exceptions import BadRequest
from heron.server import Heron

from .helpers import auth, envelope, exc_event, new_project

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
# event-shaped dicts: real keys, arbitrary values
event_keys = st.sampled_from(["event_id", "timestamp", "level", "platform", "exception", "message", "logentry",
                              "breadcrumbs", "tags", "user", "request", "contexts", "fingerprint", "release",
                              "environment", "transaction", "threads", "extra", "sdk", "type", "spans",
                              "start_timestamp"])
events = st.dictionaries(event_keys, json_values, max_size=8) | st.fixed_dictionaries(
    {"type": st.just("transaction"), "contexts": st.dictionaries(st.sampled_from(["trace", "os"]), json_values),
     "spans": st.lists(st.dictionaries(st.sampled_from(["span_id", "op", "start_timestamp", "timestamp", "tags",
                                                        "data"]), json_values), max_size=3)})
item_types = st.sampled_from(["event", "transaction", "attachment", "session", "sessions", "client_report",
                              "check_in", "user_report", "feedback", "weird"])


# strings and keys that sit near the scrubbing rules: secrets, card numbers, URL credentials,
# auth schemes after odd whitespace, and text around them
_near = st.sampled_from(["password", "Api-Key", "x_session_id", "token", "Bearer", "basic", "4111 1111 1111 1111",
                         "4111-1111-1111-1111", "https://u:pw@host/x", "https://h/p?sig=abc&q=1", "://", "=",
                         "\n", "\t", " ", "\"", "\\", "é", "order 12345", "1764141234.5678", "abcdefghijkl",
                         "Bearer abcdefghijkl", "x\nbasic\tabcdefghijkl", "4111111111111111"])
_texts = st.lists(_near | st.text(max_size=6), max_size=5).map("".join)
_scrub_values = st.recursive(
    st.none() | st.integers() | _texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4)
    | st.lists(st.tuples(_texts, inner).map(list), min_size=1, max_size=3),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(_scrub_values)
@example("Bearer abcdefghijkl")
@example({"h": "x\nbasic\tabcdefghijkl"})
@example(["card 4111 1111 1111 1111"])
@example({"url": "https://h/p?api_key=abc&q=1"})
@example({"url": "https://user:pw@host/x"})
@example({"nested": {"Api-Key": "k"}})
@example([["X-Auth", "v"]])
def test_scrub_precheck_never_skips_what_the_walk_would_filter(value: Any) -> None:
    """`Scrubber.clean` lets a subtree skip the walk: it must only say so when the walk would
    change nothing."""
    scrub = Scrubber()
    if scrub.clean(value):
        assert scrub.value(json.loads(json.dumps(value))) == value


def _reference_value(scrub: Scrubber, v: Any, depth: int = 0) -> Any:
    """`Scrubber.value` as the rules read: code keys verbatim, sensitive keys filtered unless
    empty, [key, value] pairs by key, text rules on strings, nothing below depth 20."""
    from heron.errors import scrub as sc

    if isinstance(v, str):
        return scrub.text(v)
    if depth > 20:
        return v
    if isinstance(v, dict):
        return {k: (v2 if k in sc._CODE_KEYS else
                    sc.FILTERED if isinstance(k, str) and scrub.sensitive(k) and v2 not in (None, "")
                    else _reference_value(scrub, v2, depth + 1)) for k, v2 in v.items()}
    if isinstance(v, list):
        if v and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in v):
            return [[p[0], sc.FILTERED if scrub.sensitive(p[0]) else _reference_value(scrub, p[1], depth + 1)]
                    for p in v]
        return [_reference_value(scrub, x, depth + 1) for x in v]
    return v


_code_keys = st.sampled_from(["module", "filename", "lineno", "function"])
_var_values = st.recursive(
    st.none() | st.integers() | st.booleans() | _texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts | _code_keys, inner, max_size=4)
    | st.lists(st.tuples(_texts, inner).map(list), min_size=1, max_size=3),
    max_leaves=20)


def _deep(n: int) -> Any:
    v: Any = {"password": "x", "url": "https://u:pw@h/"}
    for _ in range(n):
        v = {"k": v}
    return v


@settings(max_examples=400, deadline=None)
@given(st.lists(st.dictionaries(_texts | _code_keys, _var_values, max_size=5), max_size=6))
@example([{"password": "hunter2", "self": "<Handler at 0x7f00>", "ctx": {"user_id": 3, "token": ""}}] * 3)
@example([{"password": "hunter2"}, {"auth": "Bearer abcdefghijkl"}])
@example([{"a": _deep(19)}, {"a": _deep(20)}, {"a": _deep(25)}])
@example([{"module": {"password": "stays"}, "pairs": [["api_key", "k"], ["q", "4111 1111 1111 1111"]]}])
def test_frame_locals_fast_walk_equals_the_rules(frame_vars: list[dict[str, Any]]) -> None:
    """Frame locals are walked in place with remembered text results: the result must be what
    `value({"vars": ...})` gives each frame."""
    scrub = Scrubber()
    frames = [{"function": "f", "vars": json.loads(json.dumps(v))} for v in frame_vars]
    scrub._frame_vars(frames)
    assert [f["vars"] for f in frames] == [_reference_value(scrub, {"vars": v})["vars"] for v in frame_vars]


@settings(max_examples=300, deadline=None)
@given(_var_values)
def test_scrub_value_equals_the_rules(value: Any) -> None:
    scrub = Scrubber()
    assert scrub.value(json.loads(json.dumps(value))) == _reference_value(scrub, value)


def _reference_text(scrub: Scrubber, s: str) -> str:
    """`Scrubber.text` as the rules read, with no fast-path guards."""
    from heron.errors import scrub as sc

    if len(s) < 8:
        return s
    s = sc._CARD.sub(scrub._card, s)
    s = sc._URL_CRED.sub(lambda m: m.group(1) + sc.FILTERED, s)
    s = sc._URL_USERINFO.sub(lambda m: m.group(1) + sc.FILTERED + "@", s)
    if " " in s:
        s = sc._BEARER.sub(lambda m: f"{m.group(1)} {sc.FILTERED}", s)
    return s


@settings(max_examples=500, deadline=None)
@given(_texts | st.text(max_size=40))
@example("x Bearer abcdefghijkl")
@example("Ba\u017fic abcdefghijkl zz")  # long s: re.I folds it to "s"
@example("pan 4111 1111 1111 1111 ok")
@example("\u0664\u0661\u0661\u0661" * 4)  # non-ASCII digits
def test_scrub_text_guards_change_nothing(s: str) -> None:
    scrub = Scrubber()
    assert scrub.text(s) == _reference_text(scrub, s)


_crumb_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70) \
    | st.sampled_from(["info", "WARN", "warning", "", "critical", "x" * 65, "2024-01-02T03:04:05Z", 0.0, 1e12])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["timestamp", "level", "type", "category", "message", "data"]),
                       _crumb_values | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), max_size=6))
def test_breadcrumb_fast_path_equals_the_rules(crumb: dict[str, Any]) -> None:
    from heron.errors import normalize as n

    received = 1_700_000_000.0
    want: dict[str, Any] = {"timestamp": n.timestamp(crumb.get("timestamp"), received) or received,
                            "level": n.level(crumb.get("level") or "info"),
                            "type": n._str(crumb.get("type"), 64) or "default"}
    for key in ("category", "message"):
        if (s := n._str(crumb.get(key))) is not None:
            want[key] = s
    if isinstance(crumb.get("data"), dict):
        want["data"] = crumb["data"]
    assert n.breadcrumb(crumb, received) == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.none() | st.integers() | st.text(max_size=5) | st.text(min_size=1020, max_size=1030),
                max_size=12))
def test_frame_context_lines_fast_path_equals_the_rules(lines: list[Any]) -> None:
    from heron.errors import normalize as n

    want = [s for s in (n._str(x, 1024) for x in lines[:10]) if s is not None]
    assert n.frame({"function": "f", "pre_context": lines, "post_context": lines[:3]})["pre_context"] == want


_frame_values = st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([1.0, 0.0, 2.5, "", "x" * 1030]) \
    | st.text(max_size=6) | st.lists(st.sampled_from(["a", "b", 1, True, None]), max_size=3)
_frames = st.dictionaries(st.sampled_from(["filename", "abs_path", "function", "module", "lineno", "colno", "in_app",
                                           "context_line", "pre_context", "post_context", "vars", "package"]),
                          _frame_values | st.dictionaries(st.sampled_from(["a", "password"]), st.integers(), max_size=2),
                          max_size=7)


@settings(max_examples=400, deadline=None)
@given(st.lists(_frames, min_size=1, max_size=6))
@example([{"function": "f", "lineno": 1, "in_app": True}, {"function": "f", "lineno": True, "in_app": True},
          {"function": "f", "lineno": 1.0, "in_app": 1}, {"function": "f", "lineno": 1, "in_app": True}])
@example([{"function": "f", "pre_context": ["a", 1]}, {"function": "f", "pre_context": ["a", True]},
          {"function": "f", "pre_context": ["a", "1"]}])
@example([{"function": "f", "vars": {"a": 1}}, {"function": "f", "vars": {"a": 2}}, {"function": "f", "vars": 3}])
def test_memoized_frames_equal_fresh_ones(frames: list[dict[str, Any]]) -> None:
    """The frame memo recognizes a frame seen before by `==` on its fields: 1, 1.0 and True are
    equal there but not to `frame`, so the result must still be exactly (types included) what
    a fresh normalization gives, whatever was seen before, and the input stays as it was."""
    from heron.errors import normalize as n

    n._frames.clear()
    for f in frames + frames[::-1]:
        before = json.dumps(f, sort_keys=True)
        got, want = n.cached_frame(f), n.frame(f)
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
        assert [type(got[k]) for k in sorted(got)] == [type(want[k]) for k in sorted(want)]
        assert json.dumps(f, sort_keys=True) == before


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_only_raises_bad_request(data: bytes) -> None:
    try:
        env = parse_envelope(data)
    except BadRequest:
        return
    for item in env.items:
        assert isinstance(item.type, str) and isinstance(item.payload, bytes)


_framed = st.lists(st.sampled_from([b"{}", b'{"type":"event"}', b'{"type":"event","length":3}',
                                     b'{"type":"attachment","length":0}', b'{"type":""}', b"[1]", b"",
                                     b"  {\"a\":1}", b"{", b"\n", b"\t\r {}", b'{"length":-1,"type":"x"}']),
                   max_size=8).map(b"\n".join)


@settings(max_examples=300, deadline=None)
@given(_framed | st.binary(max_size=300))
def test_parser_views_equal_copies(data: bytes) -> None:
    """The request path parses with payloads as views of the body (no copies): the same items,
    the same bytes, the same first byte checked, the same errors."""
    from heron.errors.envelope import first_byte

    try:
        want = parse_envelope(data)
    except BadRequest as exc:
        with pytest.raises(BadRequest) as got:
            parse_envelope(data, view=True)
        assert str(got.value) == str(exc)
        return
    env = parse_envelope(data, view=True)
    assert env.headers == want.headers
    assert [(i.type, i.headers, bytes(i.payload)) for i in env.items] == \
        [(i.type, i.headers, i.payload) for i in want.items]
    for i, w in zip(env.items, want.items, strict=True):
        assert isinstance(i.payload, memoryview)
        assert first_byte(i.payload) == w.payload.lstrip()[:1]


@pytest.mark.parametrize("pad", [0, 1, 63, 64, 65, 200])
def test_first_byte_past_long_whitespace(pad: int) -> None:
    from heron.errors.envelope import first_byte

    for body in (b" " * pad + b"{}", b" " * pad, b"\n\t" * pad + b"[", b"x" * pad):
        assert first_byte(memoryview(body)) == body.lstrip()[:1] == first_byte(body)


@settings(max_examples=150, deadline=None)
@given(events)
def test_normalize_scrub_group_never_crash(raw: dict[str, Any]) -> None:
    ev = normalize(raw, 1_700_000_000.0, "127.0.0.1")
    Scrubber().event(ev)
    assert len(ev["event_id"]) == 32 and ev["level"] in ("fatal", "error", "warning", "info", "debug")
    assert 1_700_000_000.0 - 31 * 86400 <= ev["timestamp"] <= 1_700_000_000.0 + 60
    assert 0 < group(1, ev) < 2**63
    json.dumps(ev, default=str)


def _mutate(body: bytes, cut: int, flip: int) -> bytes:
    if not body:
        return body
    b = bytearray(body[: max(1, cut % (len(body) + 1))])
    if b:
        b[flip % len(b)] ^= 0x20
    return bytes(b)


async def test_fuzzed_requests_never_break_the_server(heron: Heron, client: httpx.AsyncClient) -> None:
    pid, key = new_project(heron)
    url = f"/api/{pid}/envelope/"
    statuses: list[int] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(item_types, events), min_size=1, max_size=4), st.booleans(),
           st.integers(0, 10_000), st.integers(0, 10_000), st.booleans())
    def run(items: list[tuple[str, dict[str, Any]]], explicit: bool, cut: int, flip: int, mutate: bool) -> None:
        body = envelope(*items, explicit_length=explicit)
        if mutate:
            body = _mutate(body, cut, flip)
        r = asyncio.run_coroutine_threadsafe(client.post(url, content=body, headers=auth(key)), loop).result(30)
        assert r.status_code in (200, 400), (r.status_code, r.text, body[:300])
        if r.status_code == 400:
            assert r.json()["detail"]
        statuses.append(r.status_code)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, run)
    assert 200 in statuses and 400 in statuses
    # after all that, a good event still goes in and reads back exactly
    ev = exc_event("ZeroDivisionError", "division by zero", "after_fuzz")
    r = await client.post(url, content=envelope(("event", ev)), headers=auth(key))
    assert r.status_code == 200
    tracking(heron).flush()
    db = heron.storage.database
    rows = heron.storage.execute(f"SELECT title, culprit, level FROM `{db}`.error_events WHERE event_id = "
                                 "{e:String}", {"e": ev["event_id"]}).to_pylist()
    assert rows == [{"title": "ZeroDivisionError: division by zero", "culprit": "app.views in after_fuzz",
                     "level": "error"}]
    total = heron.storage.execute(f"SELECT count() AS n FROM `{db}`.error_events").to_pylist()[0]["n"]
    counted = sum(r["times_seen"] for r in heron.control.query("SELECT times_seen FROM error_issues"))
    assert total == counted  # every stored event is counted in exactly one issue


def test_a_scrubbed_mechanism_still_groups() -> None:
    """A scrub rule may match `mechanism` (fields: [mech]): it becomes "[Filtered]", and grouping
    must still work (it raised AttributeError, so every such event was dropped as invalid)."""
    ev = normalize({"exception": {"values": [{"type": "E", "mechanism": {"type": "x", "handled": False},
                                               "stacktrace": {"frames": [{"function": "f", "in_app": True}]}}]}},
                   1_700_000_000.0, None)
    Scrubber(fields=("mech",)).event(ev)
    assert ev["exception"]["values"][0]["mechanism"] == "[Filtered]"
    assert group(1, ev) == group(1, {**ev, "exception": {"values": [
        {**ev["exception"]["values"][0], "mechanism": {"type": "x"}}]}})
