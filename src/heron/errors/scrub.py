"""Server-side data scrubbing, on by default, applied before anything is stored.

Like Sentry's default scrubbers: a value whose key looks sensitive (password, secret, token,
auth, cookie, session, api key, ...) becomes "[Filtered]", whatever its depth; `Authorization`
and `Cookie` headers, request cookies and sensitive query parameters are filtered; card numbers
(13-19 digits passing Luhn) and `Bearer ...` credentials inside any string are filtered too.
Config (`errors.scrubbing`): `enabled`, `fields` (more key substrings), `safe_fields` (keys never
filtered), `scrub_ip_addresses`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

FILTERED = "[Filtered]"
DEFAULT_FIELDS = ("password", "passwd", "pwd", "secret", "token", "auth", "credential", "cookie",
                  "session", "csrf", "xsrf", "api_key", "apikey", "api-key", "private_key", "privatekey",
                  "access_key", "mysql_pwd", "sentry_dsn", "dsn", "card_number", "cardnumber", "cvv",
                  "ssn")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_CRED = re.compile(r"(?i)([?&;](?:[a-z0-9_.-]*(?:password|passwd|secret|token|api_?key|auth|sig|"
                       r"signature|session)[a-z0-9_.-]*)=)[^&#;\s]*")
_URL_USERINFO = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
# Cheap C-level scans decide whether a string can hold anything to filter at all.
_CARD_HINT = re.compile(r"\d(?:[ -]?\d){12}")
_DIGIT_RUN = re.compile(r"[\d -]{13}").search  # superset of _CARD_HINT: 13 digits, single separators
# Source code and code locations are not user data (Sentry leaves them alone too).
_CODE_KEYS = frozenset({"context_line", "pre_context", "post_context", "filename", "abs_path", "function",
                        "module", "package", "raw_function", "symbol", "instruction_addr", "lineno", "colno",
                        "in_app", "platform"})
# Pre-checks over a subtree's JSON bytes (see Scrubber.clean): supersets of what the rules act on.
_URL_HINT = re.compile(rb"[?&;][a-z0-9_.-]*(?:password|passwd|secret|token|api_?key|auth|sig|signature|session)"
                       rb"[a-z0-9_.-]*=|://[^:/@\s]+:[^@/\s]+@", re.I).search
_DIGIT_RUNS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x78 for c in range(256))  # digits -> "0", rest -> "x"
_CARD_RUN = b"0" * 13  # a card number is 13+ digits with at most single spaces or dashes between
_WORD_CHARS = re.compile(rb"[a-z_-]+")
_NON_WORD = bytes(c if 97 <= c <= 122 or c in (45, 95) else 32 for c in range(256))  # not [a-z_-] -> " "
# Top-level keys with rules beyond keys and text (IP addresses, header names): always walked.
_WALK_ALWAYS = frozenset({"user", "request", "exception", "threads", "breadcrumbs"})  # stacks: a selective walk anyway
_CODE, _SENSITIVE = 1, 2  # `Scrubber._kind`
_REMEMBER = 512  # longest key or string whose result is remembered (50 000 of each, at most ~50 MB)
# Keys of the event itself that hold ids, not user data.
_SKIP_TOP = {"event_id", "timestamp", "received", "level", "platform", "release", "dist", "environment",
             "fingerprint", "sdk", "type", "start_timestamp", "modules", "debug_meta", "measurements",
             "title", "metadata", "culprit", "transaction", "logger", "server_name"}


def luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


@dataclass
class Scrubber:
    enabled: bool = True
    fields: tuple[str, ...] = DEFAULT_FIELDS
    safe_fields: frozenset[str] = field(default_factory=frozenset)
    scrub_ip_addresses: bool = False

    def __post_init__(self) -> None:
        self._sensitive = re.compile("|".join(re.escape(f) for f in self.fields), re.I).search
        self._cache: dict[str, bool] = {}
        # Over a subtree's JSON, one C-level scan for anything any rule could act on: sensitive
        # key names, card-number digit runs, URL credentials, auth schemes. Each pattern matches
        # the JSON text wherever the rule would match a string in it (escaping only turns
        # whitespace inside a string into `\n`-style pairs, which the auth pattern allows), so a
        # subtree without a hit has nothing to filter and skips the Python walk.
        self._field_bytes = tuple({f.lower().encode() for f in self.fields} | {b"bearer", b"basic"})
        # When every such name is made of [a-z_-] (the defaults), an occurrence can only lie
        # inside one maximal run of those characters: checking each distinct run once (cached)
        # is the same test as scanning the whole text for every name, at a fraction of the cost.
        self._by_words = all(_WORD_CHARS.fullmatch(f) for f in self._field_bytes)
        self._word_cache: dict[bytes, bool] = {}
        self._texts: dict[str, str] = {}  # `text` results: the strings of one bug's events recur
        self._kinds: dict[Any, int] = {}  # see `_kind`

    def sensitive(self, key: str) -> bool:
        hit = self._cache.get(key)
        if hit is None:
            hit = key.lower() not in self.safe_fields and self._sensitive(key) is not None
            if len(self._cache) < 50_000:
                self._cache[key] = hit
        return hit

    def _text(self, s: str) -> str:
        """`text(s)`, remembered for strings of 8+ characters (a dict look-up instead of the
        guards' C scans: frame locals and breadcrumbs repeat across a bug's events)."""
        if len(s) < 8:
            return s
        t = self._texts.get(s)
        if t is None:
            t = self.text(s)
            if len(s) <= _REMEMBER:
                if len(self._texts) >= 50_000:
                    self._texts.clear()
                self._texts[s] = t
        return t

    def _kind(self, k: Any) -> int:
        """What `_walk` does with a key's value: 0 walk it, `_CODE` keep it, `_SENSITIVE` filter
        it (one remembered look-up per key instead of a set test and a dict look-up)."""
        kind = _CODE if k in _CODE_KEYS else _SENSITIVE if isinstance(k, str) and self.sensitive(k) else 0
        if not isinstance(k, str) or len(k) <= _REMEMBER:
            if len(self._kinds) >= 50_000:
                self._kinds.clear()
            self._kinds[k] = kind
        return kind

    def text(self, s: str) -> str:
        """Filter credentials and card numbers inside free text."""
        if len(s) < 8:
            return s
        # Guards first (substring scans and one character-class run, all C-level): most strings
        # skip every regex below. An alternation regex would cost microseconds per string.
        if _DIGIT_RUN(s) and _CARD_HINT.search(s):
            s = _CARD.sub(self._card, s)
        if "://" in s or "=" in s:
            s = _URL_CRED.sub(lambda m: m.group(1) + FILTERED, s)
            s = _URL_USERINFO.sub(lambda m: m.group(1) + FILTERED + "@", s)
        if " " in s:
            low = s.casefold()  # what re.I matches, Unicode included
            if "bearer" in low or "basic" in low or "token" in low:
                s = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", s)
        return s

    @staticmethod
    def _card(m: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", m.group(0))
        return FILTERED if 13 <= len(digits) <= 19 and luhn(digits) else m.group(0)

    def value(self, v: Any, depth: int = 0) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if depth > 20:
            return v
        if isinstance(v, dict):
            return self._dict(v, depth)
        if isinstance(v, list):
            # [key, value] pairs (headers, cookies, query strings as lists)
            if v and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in v):
                return [[p[0], FILTERED if self.sensitive(p[0]) else self.value(p[1], depth + 1)] for p in v]
            return [self.value(x, depth + 1) for x in v]
        return v

    def _dict(self, v: dict[Any, Any], depth: int) -> dict[Any, Any]:
        """`value` of a dict: code keys verbatim, sensitive keys filtered (unless empty), the rest
        scrubbed. The hot loop of scrubbing (frame locals): scalars are handled inline."""
        out = {}
        cache, text = self._cache, self.text
        for k, v2 in v.items():
            if k in _CODE_KEYS:
                out[k] = v2
                continue
            hit = cache.get(k)
            if hit is None:
                hit = isinstance(k, str) and self.sensitive(k)
            if hit and v2 is not None and v2 != "":
                out[k] = FILTERED
                continue
            c = v2.__class__
            if c is str:
                out[k] = v2 if len(v2) < 8 else text(v2)
            elif c is int or c is float or c is bool or v2 is None:
                out[k] = v2
            else:
                out[k] = self.value(v2, depth + 1)
        return out

    def _walk(self, v: Any, depth: int) -> Any:
        """`value(v, depth)`, changing `v`'s dicts and lists in place instead of copying them:
        for parts of the event nothing else holds (frame locals and breadcrumbs, decoded for this
        event alone). The result serializes to the same JSON as `value`'s; new objects are made
        only for values of other classes (subclasses, tuples), through `value`."""
        c = v.__class__
        if c is str:
            return v if len(v) < 8 else self._text(v)
        if depth > 20:
            return v
        if c is dict:
            self._walk_dict(v, depth)
            return v
        if c is list:
            if v and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in v):
                for p in v:
                    p[1] = FILTERED if self.sensitive(p[0]) else self._walk(p[1], depth + 1)
                return v
            for i, x in enumerate(v):
                if x.__class__ is dict:  # lists of dicts (breadcrumbs): no dispatch
                    if depth < 20:
                        self._walk_dict(x, depth + 1)
                    continue
                y = self._walk(x, depth + 1)
                if y is not x:
                    v[i] = y
            return v
        return self.value(v, depth)

    def _walk_dict(self, v: dict[Any, Any], depth: int) -> None:
        """`_walk` of a dict at `depth` <= 20: the hot loop of scrubbing (frame locals)."""
        kinds, texts = self._kinds, self._texts
        for k, v2 in v.items():
            kind = kinds.get(k)
            if kind is None:
                kind = self._kind(k)
            if kind:  # a code key (left as it is) or a sensitive one
                if kind == _SENSITIVE and v2 is not None and v2 != "":
                    v[k] = FILTERED
                continue
            c2 = v2.__class__
            if c2 is str:
                if len(v2) >= 8:
                    t = texts.get(v2)
                    if t is None:
                        t = self._text(v2)
                    if t is not v2:
                        v[k] = t
            elif c2 is dict:
                if depth < 20:
                    self._walk_dict(v2, depth + 1)
            elif c2 is list:
                self._walk(v2, depth + 1)
            elif not (c2 is int or c2 is float or c2 is bool or v2 is None):
                v[k] = self.value(v2, depth + 1)

    def clean(self, v: Any) -> bool:
        """True when nothing in `v` can need filtering, so the Python walk can be skipped.

        One pass of C-level scans over the subtree's JSON: sensitive field names and auth
        schemes as substrings (anywhere: keys or values), 13+ digit runs across single spaces or
        dashes, URL credentials. Each is a superset of its rule; anything not plain ASCII or
        not serializable is walked."""
        try:
            raw = orjson.dumps(v)
        except (TypeError, ValueError):
            return False
        if not raw.isascii():  # Unicode case folding and digits: leave those to the walk
            return False
        low = raw.lower()
        if self._by_words:
            cache, fields = self._word_cache, self._field_bytes
            for w in set(low.translate(_NON_WORD).split()):
                hit = cache.get(w)
                if hit is None:
                    hit = any(f in w for f in fields)
                    if len(cache) < 50_000:
                        cache[w] = hit
                if hit:
                    return False
        elif any(f in low for f in self._field_bytes):
            return False
        if _CARD_RUN in raw.translate(_DIGIT_RUNS, b" -"):
            return False
        # the URL pattern needs "=" (query credentials) or "://" and "@" (user info) to match
        return not (b"=" in raw or (b"://" in raw and b"@" in raw)) or _URL_HINT(raw) is None

    def event(self, ev: dict[str, Any]) -> dict[str, Any]:
        """Scrub a normalized event in place and return it."""
        if not self.enabled:
            return ev
        for key in list(ev):
            if key in _SKIP_TOP or (key == "tags" and self._tags(ev["tags"])):
                continue
            if key not in _WALK_ALWAYS and self.clean(ev[key]):
                continue
            if key == "breadcrumbs":
                self._walk(ev[key], 0)  # normalize's own dicts (and the payload's `data`)
            elif key == "tags":
                ev["tags"] = {k: FILTERED if self.sensitive(k) else self.text(v) for k, v in ev["tags"].items()}
            elif key == "user":
                u = ev["user"]
                if "data" in u:
                    u["data"] = self.value(u["data"])
                if self.scrub_ip_addresses and "ip_address" in u:
                    u["ip_address"] = FILTERED
            elif key == "request":
                self._request(ev["request"])
            elif key in ("exception", "threads") and isinstance(ev[key], dict):
                self._stacks(ev[key])
            else:
                ev[key] = self.value(ev[key])
        if "title" in ev:
            ev["title"] = self.text(ev["title"])
        if "metadata" in ev and isinstance(ev["metadata"].get("value"), str):
            ev["metadata"]["value"] = self.text(ev["metadata"]["value"])
        return ev

    def _tags(self, tags: Any) -> bool:
        """The tags rule (sensitive key: filtered, even when empty; else `text`) applied in place
        to a dict of strings (what normalize makes), True when done. A direct loop over a few
        tags costs less than `clean`'s scan, and gives the same result: when `clean` passes,
        the rule changes nothing."""
        if tags.__class__ is not dict or not all(k.__class__ is str and v.__class__ is str
                                                 for k, v in tags.items()):
            return False
        for k, v in tags.items():
            if self.sensitive(k):
                tags[k] = FILTERED
            elif len(v) >= 8:
                t = self._text(v)
                if t is not v:
                    tags[k] = t
        return True

    def _stacks(self, container: dict[str, Any]) -> None:
        """Exceptions and threads: only values, mechanism data and frame locals can hold user data
        (frames are mostly code locations, walked for their `vars` alone: the hot path)."""
        for item in container.get("values") or []:
            if not isinstance(item, dict):
                continue
            for k, v in item.items():
                if k == "stacktrace" and isinstance(v, dict):
                    self._frame_vars(v.get("frames") or [])
                elif k not in _CODE_KEYS and k not in ("type", "module", "thread_id", "id", "crashed",
                                                       "current", "name"):
                    item[k] = FILTERED if self.sensitive(k) and v not in (None, "") else self.value(v)

    def _frame_vars(self, frames: list[Any]) -> None:
        """Each frame's locals, as `value({"vars": ...})` would scrub them, in place (`_walk`):
        the locals are the decoded payload's own dicts. Locals nearly always hold some
        sensitive-looking name (`password`, `token`, a session), so a `clean` pre-check would
        rarely spare the walk, and a `plain` one (no text rule can fire) cost more than the
        remembered `text` results it would save."""
        todo = [f for f in frames if isinstance(f, dict) and "vars" in f]
        if not todo:
            return
        if self.sensitive("vars"):  # a configured field matching "vars" itself
            for f in todo:
                if f["vars"] not in (None, ""):
                    f["vars"] = FILTERED
            return
        for f in todo:
            v = f["vars"]
            if v.__class__ is dict:
                self._walk_dict(v, 1)
            else:
                w = self._walk(v, 1)
                if w is not v:
                    f["vars"] = w

    def _request(self, r: dict[str, Any]) -> None:
        if "headers" in r:
            r["headers"] = {k: FILTERED if self.sensitive(k) or k.lower() in ("authorization", "cookie",
                                                                               "set-cookie", "x-sentry-auth")
                            else self._text(v) for k, v in r["headers"].items()}
        if "cookies" in r:
            r["cookies"] = {k: FILTERED for k in r["cookies"]}
        if isinstance(r.get("query_string"), str):
            qs = "?" + r["query_string"]
            r["query_string"] = self.text(qs)[1:]
        elif isinstance(r.get("query_string"), dict):
            r["query_string"] = self.value(r["query_string"])
        if "url" in r:
            r["url"] = self._text(r["url"])
        for key in ("data", "env"):
            if key in r:
                r[key] = self.value(r[key])
        if self.scrub_ip_addresses and isinstance(r.get("env"), dict) and "REMOTE_ADDR" in r["env"]:
            r["env"]["REMOTE_ADDR"] = FILTERED


def from_config(section: dict[str, Any]) -> Scrubber:
    cfg = section.get("scrubbing") or {}
    return Scrubber(enabled=bool(cfg.get("enabled", True)),
                    fields=DEFAULT_FIELDS + tuple(str(f).lower() for f in cfg.get("fields") or ()),
                    safe_fields=frozenset(str(f).lower() for f in cfg.get("safe_fields") or ()),
                    scrub_ip_addresses=bool(cfg.get("scrub_ip_addresses", False)))
