"""Go text/template for Python: the subset Prometheus rules and Alertmanager notifications use.

    t = Template("alert", funcs=prometheus_funcs()).parse('{{ $labels.job | toUpper }}')
    t.execute(data)                     # the main template
    t.execute(data, name="slack.text")  # a `define`d one

A `Template` is a set: `parse` may be called several times (Alertmanager loads default.tmpl and
then the user's files), `define`/`block` add named templates, `template "x" .` calls them.
With `autoescape=True` every action's output is HTML-escaped unless marked `safeHtml` (the
approximation of Go's html/template that HTML e-mails need).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from heron.templating.builtins import BUILTINS
from heron.templating.errors import TemplateError
from heron.templating.execute import Executor, SafeHTML, truth
from heron.templating.functions import (
    QueryFunc,
    QuerySample,
    alertmanager_funcs,
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
    prometheus_funcs,
)
from heron.templating.gofmt import go_sprintf, go_value
from heron.templating.parse import Tree, parse


class Template:
    """A set of named templates sharing one function map."""

    def __init__(self, name: str = "", funcs: Mapping[str, Callable[..., Any]] | None = None,
                 autoescape: bool = False) -> None:
        self.name = name
        self.funcs: dict[str, Callable[..., Any]] = dict(BUILTINS)
        if funcs:
            self.funcs.update(funcs)
        self.autoescape = autoescape
        self.trees: dict[str, Tree] = {}

    def parse(self, text: str, name: str | None = None) -> Template:
        """Add `text` (and its `define`s) to the set; raises TemplateError with `name:line:`."""
        trees = parse(name or self.name, text, self.funcs)
        self.trees.update(trees)
        return self

    def lookup(self, name: str) -> bool:
        return name in self.trees

    @property
    def names(self) -> list[str]:
        return sorted(self.trees)

    def execute(self, data: Any = None, name: str | None = None) -> str:
        """Render the template called `name` (default: the set's own name) with `data` as dot."""
        return Executor(self.trees, self.funcs, self.autoescape).run(name or self.name, data)


def render(text: str, data: Any = None, funcs: Mapping[str, Callable[..., Any]] | None = None,
           name: str = "template") -> str:
    """Parse and execute one template text (convenience for tests and one-offs)."""
    return Template(name, funcs).parse(text).execute(data)


# Prometheus prepends these to every alert label/annotation template (rules/alerting.go).
ALERT_DEFS = ("{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
              "{{$externalURL := .ExternalURL}}{{$value := .Value}}")


def alert_template_data(labels: Mapping[str, str], external_labels: Mapping[str, str],
                        external_url: str, value: Any) -> dict[str, Any]:
    return {"Labels": dict(labels), "ExternalLabels": dict(external_labels),
            "ExternalURL": external_url, "Value": value}


def expand_alert(text: str, rule_name: str, data: Mapping[str, Any],
                 funcs: Mapping[str, Callable[..., Any]]) -> str:
    """Expand one alert label/annotation like Prometheus: errors become the expansion text."""
    if "{{" not in text:
        return text
    name = "__alert_" + rule_name
    try:
        trees = _parsed_alert_template(name, text)
    except TemplateError as e:
        return f"<error expanding template: error parsing template {name}: {e}>"
    try:
        return Executor(trees, funcs if "eq" in funcs else {**BUILTINS, **funcs}).run(name, data)
    except TemplateError as e:
        return f"<error expanding template: error executing template {name}: {e}>"
    except RecursionError:
        return f"<error expanding template: error executing template {name}: too deep>"


@functools.lru_cache(maxsize=4096)
def _parsed_alert_template(name: str, text: str) -> dict[str, Tree]:
    """Parsed alert templates, cached: rules expand the same text at every evaluation."""
    return parse(name, ALERT_DEFS + text, _PROM_FUNC_NAMES)


_PROM_FUNC_NAMES = frozenset(BUILTINS) | frozenset(prometheus_funcs())


def check_alert_template(text: str, rule_name: str) -> str | None:
    """Parse-check an alert template the way `promtool check rules` does; the error or None."""
    try:
        Template("__alert_" + rule_name, prometheus_funcs()).parse(ALERT_DEFS + text)
    except TemplateError as e:
        return str(e)
    return None


__all__ = [
    "ALERT_DEFS", "QueryFunc", "QuerySample", "SafeHTML", "Template", "TemplateError",
    "alert_template_data", "alertmanager_funcs", "check_alert_template", "expand_alert", "go_sprintf",
    "go_value", "humanize", "humanize1024", "humanize_duration", "humanize_percentage",
    "humanize_timestamp", "prometheus_funcs", "render", "truth",
]
