"""Prometheus relabeling: `relabel_configs` (targets) and `metric_relabel_configs` (samples).

Semantics follow prometheus/model/relabel exactly: regexes are fully anchored, `source_labels`
values are joined with `separator`, `replacement` expands `$1`, `${1}`, `${name}` (Go's
`Regexp.Expand`), an empty result of `replace` deletes the target label, and a missing label
reads as "". A rule list maps a label dict to a new dict, or None when the series is dropped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

ACTIONS = ("replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap", "labeldrop",
           "labelkeep", "lowercase", "uppercase")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_GO_TEMPLATE = re.compile(r"\$(\$|\{([a-zA-Z0-9_]+)\}|([a-zA-Z0-9_]+))")


class RelabelError(ValueError):
    """A relabel rule is invalid; `field` names the offending key."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RelabelRule:
    action: str = "replace"
    source_labels: tuple[str, ...] = ()
    separator: str = ";"
    regex: re.Pattern[str] = re.compile("(?s:.*)")
    target_label: str = ""
    replacement: str = "$1"
    modulus: int = 0

    @classmethod
    def from_dict(cls, raw: Any) -> RelabelRule:
        if not isinstance(raw, dict):
            raise RelabelError("a relabel rule must be a mapping", "")
        known = {"action", "source_labels", "separator", "regex", "target_label", "replacement", "modulus"}
        for key in raw:
            if key not in known:
                raise RelabelError("unknown field", str(key))
        action = str(raw.get("action", "replace")).lower()
        if action not in ACTIONS:
            raise RelabelError(f"unknown relabel action {action!r} (one of {', '.join(ACTIONS)})", "action")
        src = raw.get("source_labels") or []
        if isinstance(src, str) or not isinstance(src, list):
            raise RelabelError("source_labels must be a list of label names", "source_labels")
        regex_src = raw.get("regex", "(.*)")
        if isinstance(regex_src, bool):  # `regex: true` (YAML bool) is the string "true" in Go's yaml
            regex_src = "true" if regex_src else "false"
        try:
            # Go RE2 anchors the whole expression; Python needs the explicit (?s) for `.` = any.
            regex = re.compile(f"^(?s:{_go_regex(str(regex_src))})$")
        except re.error as exc:
            raise RelabelError(f"invalid regex {regex_src!r}: {exc}", "regex") from None
        rule = cls(action=action, source_labels=tuple(str(s) for s in src),
                   separator=str(raw.get("separator", ";")), regex=regex,
                   target_label=str(raw.get("target_label", "")),
                   replacement=str(raw.get("replacement", "$1")), modulus=int(raw.get("modulus", 0) or 0))
        rule._validate()
        return rule

    def _validate(self) -> None:
        a = self.action
        if a in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") \
                and not self.target_label:
            raise RelabelError(f"relabel action {a} requires 'target_label'", "target_label")
        if a in ("lowercase", "uppercase", "hashmod", "keepequal", "dropequal") \
                and not _LABEL_NAME.match(self.target_label):
            raise RelabelError(f"{self.target_label!r} is not a valid label name", "target_label")
        if a == "hashmod" and self.modulus <= 0:
            raise RelabelError("relabel action hashmod requires a positive 'modulus'", "modulus")
        if a in ("keepequal", "dropequal") and not self.source_labels:
            raise RelabelError(f"relabel action {a} requires 'source_labels'", "source_labels")
        if a in ("labeldrop", "labelkeep") and (self.source_labels or self.target_label):
            raise RelabelError(f"{a} takes only 'regex'", "source_labels")


def _go_regex(expr: str) -> str:
    """The few RE2 spellings Python reads differently: named groups `(?P<n>` are shared."""
    return expr.replace("(?<", "(?P<") if "(?<" in expr and "(?<=" not in expr and "(?<!" not in expr \
        else expr


def expand(template: str, match: re.Match[str]) -> str:
    """Go `Regexp.Expand`: `$1`, `${1}`, `${name}`, `$$`; unknown groups expand to ""."""
    if "$" not in template:
        return template

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(3)
        try:
            return match.group(int(name) if name.isdigit() else name) or ""
        except (IndexError, re.error):
            return ""

    return _GO_TEMPLATE.sub(sub, template)


def apply(rules: list[RelabelRule], labels: dict[str, str]) -> dict[str, str] | None:
    """Run `rules` over a copy of `labels`; None when a keep/drop rule drops the series."""
    out = dict(labels)
    for r in rules:
        a = r.action
        if a in ("labeldrop", "labelkeep", "labelmap"):
            if a == "labelmap":
                for name, value in list(out.items()):
                    m = r.regex.match(name)
                    if m:
                        out[expand(r.replacement, m)] = value
            else:
                keep = a == "labelkeep"
                out = {k: v for k, v in out.items() if bool(r.regex.match(k)) == keep}
            continue
        value = r.separator.join(out.get(s, "") for s in r.source_labels)
        if a == "keep":
            if not r.regex.match(value):
                return None
        elif a == "drop":
            if r.regex.match(value):
                return None
        elif a == "keepequal":
            if value != out.get(r.target_label, ""):
                return None
        elif a == "dropequal":
            if value == out.get(r.target_label, ""):
                return None
        elif a == "replace":
            m = r.regex.match(value)
            if not m:
                continue
            target = expand(r.target_label, m)
            if not _LABEL_NAME.match(target):
                continue
            result = expand(r.replacement, m)
            if result:
                out[target] = result
            else:
                out.pop(target, None)
        elif a == "lowercase":
            out[r.target_label] = value.lower()
        elif a == "uppercase":
            out[r.target_label] = value.upper()
        elif a == "hashmod":
            digest = hashlib.md5(value.encode()).digest()
            out[r.target_label] = str(int.from_bytes(digest[8:], "big") % r.modulus)
    return {k: v for k, v in out.items() if v != ""}


def parse_rules(raw: Any) -> list[RelabelRule]:
    """A YAML list of rules; RelabelError.field is `<index>.<key>`."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RelabelError("must be a list of relabel rules", "")
    rules = []
    for i, item in enumerate(raw):
        try:
            rules.append(RelabelRule.from_dict(item))
        except RelabelError as exc:
            raise RelabelError(str(exc), f"{i}.{exc.field}" if exc.field else str(i)) from None
    return rules
