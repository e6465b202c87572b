"""Grafana dashboard JSON → Heron's dashboard model.

Heron stores dashboards in Grafana's own JSON model (so an export from Grafana imports as is and
an export from Heron loads in Grafana), normalized to the subset the UI draws: panels of the
supported types keep their Prometheus targets; old types map to their successors (`graph` →
`timeseries`, `singlestat` → `stat`); collapsed rows are flattened; anything else stays in the
model and is drawn as a clear "unsupported panel" placeholder. Errors name the JSON path.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from heron.exceptions import HeronError

SUPPORTED_PANELS = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "piechart", "heatmap", "row"}
RENAMED_PANELS = {"graph": "timeseries", "singlestat": "stat", "grafana-singlestat-panel": "stat",
                  "table-old": "table", "grafana-piechart-panel": "piechart"}
VARIABLE_TYPES = {"query", "custom", "interval", "constant", "textbox", "datasource"}
_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class DashboardError(HeronError):
    """A dashboard JSON document is not a usable dashboard; the message names the JSON path."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


def parse(text: str | bytes) -> dict[str, Any]:
    """Parse dashboard JSON text; a syntax error names line and column."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DashboardError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise DashboardError(f"not UTF-8 text ({exc.reason})") from None
    if not isinstance(data, dict):
        raise DashboardError("a dashboard must be a JSON object")
    return data


def unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the plain model, the API envelope `{"dashboard": {...}}` and `{"meta":..., "dashboard":...}`."""
    inner = data.get("dashboard")
    if isinstance(inner, dict) and "panels" not in data:
        return inner
    return data


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:40] or "dashboard"


def normalize(data: dict[str, Any], uid: str | None = None) -> dict[str, Any]:
    """Return a validated copy of a Grafana (or Heron) dashboard model ready to store."""
    model = copy.deepcopy(unwrap(data))
    title = model.get("title")
    if not isinstance(title, str) or not title.strip():
        raise DashboardError("missing or empty", "title")
    model["title"] = title.strip()[:200]
    uid = uid or model.get("uid") or slugify(model["title"])
    if not isinstance(uid, str) or not _UID.match(uid):
        raise DashboardError("must be 1-40 letters, digits, '-' or '_'", "uid")
    model["uid"] = uid
    model.pop("id", None)
    tags = model.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DashboardError("must be a list of strings", "tags")
    panels = model.get("panels", [])
    if not isinstance(panels, list):
        raise DashboardError("must be a list", "panels")
    if not panels and isinstance(model.get("rows"), list):  # Grafana < 5 "rows" layout
        panels = _from_old_rows(model.pop("rows"))
    model["panels"] = _flatten(panels, "panels")
    _layout(model["panels"])
    # Grafana's reading order is the grid's, not the array's: a row owns the panels below it.
    model["panels"].sort(key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    model["templating"] = {"list": _variables(model.get("templating"))}
    t = model.get("time")
    if not isinstance(t, dict) or not isinstance(t.get("from"), str) or not isinstance(t.get("to"), str):
        model["time"] = {"from": "now-6h", "to": "now"}
    refresh = model.get("refresh")
    model["refresh"] = refresh if isinstance(refresh, str) else ""
    return model


def _from_old_rows(rows: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        if row.get("title") and row.get("showTitle", True):
            out.append({"type": "row", "title": row["title"], "collapsed": False, "panels": []})
        for p in row.get("panels") or []:
            if isinstance(p, dict):
                span = p.get("span", 12)
                p.setdefault("gridPos", {"w": int(span * 2) if isinstance(span, (int, float)) else 12, "h": 8})
                out.append(p)
    return out


def _flatten(panels: list[Any], path: str) -> list[dict[str, Any]]:
    """Rows keep their place; the panels of a collapsed row follow it (the UI can fold them)."""
    out: list[dict[str, Any]] = []
    for i, panel in enumerate(panels):
        where = f"{path}[{i}]"
        if not isinstance(panel, dict):
            raise DashboardError("a panel must be a JSON object", where)
        out.append(_panel(panel, where))
        if panel.get("type") == "row":
            nested = panel.pop("panels", None) or []
            out[-1].pop("panels", None)
            if not isinstance(nested, list):
                raise DashboardError("must be a list", where + ".panels")
            out.extend(_panel(p, f"{where}.panels[{j}]") for j, p in enumerate(nested) if isinstance(p, dict))
    return out


SINGLESTAT_CALCS = {"avg": "mean", "current": "lastNotNull", "max": "max", "min": "min", "total": "sum",
                    "first": "firstNotNull", "delta": "diff", "diff": "diff", "range": "range"}


def _old_piechart(panel: dict[str, Any]) -> None:
    """grafana-piechart-panel (Grafana < 8): `valueName` and `pieType` become the new options."""
    options = panel.setdefault("options", {})
    if not isinstance(options, dict):
        panel["options"] = options = {}
    calc = SINGLESTAT_CALCS.get(str(panel.get("valueName", "")))
    if calc:
        options.setdefault("reduceOptions", {"calcs": [calc]})
    if panel.get("pieType") in ("pie", "donut"):
        options.setdefault("pieType", panel["pieType"])
    if isinstance(panel.get("format"), str):
        panel.setdefault("fieldConfig", {}).setdefault("defaults", {}).setdefault("unit", panel["format"])


def _old_heatmap(panel: dict[str, Any]) -> None:
    """The legacy heatmap (no `options`), as Grafana migrates it: `color.colorScheme`
    ("interpolateOranges") becomes options.color.scheme, `yBucketNumber` / `yBucketSize` and
    `yAxis.logBase` options.calculation.yBuckets, `legend.show` options.legend.show."""
    if isinstance(panel.get("options"), dict):
        return
    options: dict[str, Any] = {}
    legacy = panel.get("color")
    if isinstance(legacy, dict) and isinstance(legacy.get("colorScheme"), str):
        options["color"] = {"scheme": legacy["colorScheme"].removeprefix("interpolate")}
    y: dict[str, Any] = {}
    if isinstance(panel.get("yBucketNumber"), int | float) and panel["yBucketNumber"] > 0:
        y = {"mode": "count", "value": str(panel["yBucketNumber"])}
    elif isinstance(panel.get("yBucketSize"), int | float) and panel["yBucketSize"] > 0:
        y = {"mode": "size", "value": str(panel["yBucketSize"])}
    axis = panel.get("yAxis")
    if isinstance(axis, dict) and axis.get("logBase") in (2, 10):
        y["scale"] = {"type": "log", "log": axis["logBase"]}
    if y:
        options["calculation"] = {"yBuckets": y}
    legend = panel.get("legend")
    if isinstance(legend, dict) and isinstance(legend.get("show"), bool):
        options["legend"] = {"show": legend["show"]}
    if options:
        panel["options"] = options


def _singlestat(panel: dict[str, Any]) -> str:
    """Grafana's own singlestat migration, the simple parts: reducer (valueName), sparkline,
    colouring, thresholds + colors, value and range maps, and `gauge.show` → a gauge panel."""
    defaults = panel.setdefault("fieldConfig", {}).setdefault("defaults", {})
    options = panel.setdefault("options", {})
    calc = SINGLESTAT_CALCS.get(str(panel.get("valueName", "")))
    if calc:
        options.setdefault("reduceOptions", {"calcs": [calc]})
    spark = panel.get("sparkline")
    if isinstance(spark, dict):
        options.setdefault("graphMode", "area" if spark.get("show") else "none")
    if "colorBackground" in panel or "colorValue" in panel:
        options.setdefault("colorMode", "background" if panel.get("colorBackground")
                           else "value" if panel.get("colorValue") else "none")
    colors, levels = panel.get("colors"), panel.get("thresholds")
    if isinstance(colors, list) and isinstance(levels, str) and levels.strip():
        try:
            values = [float(x) for x in levels.split(",")]
        except ValueError:
            values = []
        if values and len(colors) >= len(values) + 1:
            defaults.setdefault("thresholds", {"mode": "absolute", "steps": [
                {"color": colors[0], "value": None}, *({"color": c, "value": v} for c, v in zip(colors[1:], values, strict=False))]})
    mappings = []
    for m in panel.get("valueMaps") or []:
        if isinstance(m, dict) and m.get("op", "=") == "=" and "value" in m and m["value"] != "null":
            mappings.append({"type": "value", "options": {str(m["value"]): {"text": str(m.get("text", ""))}}})
    for m in panel.get("rangeMaps") or []:
        try:
            lo, hi = float(m["from"]), float(m["to"])
        except (KeyError, TypeError, ValueError):
            continue
        mappings.append({"type": "range", "options": {"from": lo, "to": hi, "result": {"text": str(m.get("text", ""))}}})
    if mappings:
        defaults.setdefault("mappings", mappings)
    gauge = panel.get("gauge")
    if isinstance(gauge, dict) and gauge.get("show"):
        for key, src in (("min", "minValue"), ("max", "maxValue")):
            if isinstance(gauge.get(src), (int, float)):
                defaults.setdefault(key, gauge[src])
        return "gauge"
    return "stat"


def _panel(panel: dict[str, Any], where: str) -> dict[str, Any]:
    kind = panel.get("type", "timeseries")
    if not isinstance(kind, str):
        raise DashboardError("must be a string", where + ".type")
    if kind in RENAMED_PANELS:
        panel["type"] = kind = RENAMED_PANELS[kind]
        if kind == "timeseries" and isinstance(panel.get("yaxes"), list) and panel["yaxes"]:
            unit = panel["yaxes"][0].get("format") if isinstance(panel["yaxes"][0], dict) else None
            if isinstance(unit, str):
                panel.setdefault("fieldConfig", {}).setdefault("defaults", {}).setdefault("unit", unit)
        if kind == "stat" and isinstance(panel.get("format"), str):
            panel.setdefault("fieldConfig", {}).setdefault("defaults", {}).setdefault("unit", panel["format"])
        if kind == "stat":
            kind = _singlestat(panel)
        if kind == "piechart":
            _old_piechart(panel)
    panel["type"] = kind
    if kind == "heatmap":
        _old_heatmap(panel)
    if kind not in SUPPORTED_PANELS:
        panel["heronUnsupported"] = f"panel type '{kind}' is not supported by Heron yet"
    title = panel.get("title", "")
    panel["title"] = title if isinstance(title, str) else str(title)
    targets = panel.get("targets", [])
    if not isinstance(targets, list):
        raise DashboardError("must be a list", where + ".targets")
    kept = []
    for j, target in enumerate(targets):
        if not isinstance(target, dict):
            raise DashboardError("a target must be a JSON object", f"{where}.targets[{j}]")
        expr = target.get("expr", target.get("query"))
        if expr is None:
            target["heronUnsupported"] = "only Prometheus (PromQL) targets are supported"
        elif not isinstance(expr, str):
            raise DashboardError("must be a string", f"{where}.targets[{j}].expr")
        else:
            target["expr"] = expr
        target.setdefault("refId", chr(ord("A") + j % 26))
        target.pop("datasource", None)  # Heron is the data source
        kept.append(target)
    panel["targets"] = kept
    panel.pop("datasource", None)
    return panel


def _layout(panels: list[dict[str, Any]]) -> None:
    """Fill missing gridPos in reading order on the 24-column grid, as Grafana does."""
    x = y = row_h = 0
    for p in panels:
        g = p.get("gridPos")
        if isinstance(g, dict) and all(isinstance(g.get(k), (int, float)) for k in ("x", "y", "w", "h")):
            x, y, row_h = int(g["x"]) + int(g["w"]), int(g["y"]), max(row_h, int(g["h"]))
            continue
        w = 24 if p["type"] == "row" else int(g.get("w", 12)) if isinstance(g, dict) else 12
        h = 1 if p["type"] == "row" else int(g.get("h", 8)) if isinstance(g, dict) else 8
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, row_h = x + w, max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0


def _variables(templating: Any) -> list[dict[str, Any]]:
    items = templating.get("list", []) if isinstance(templating, dict) else []
    out = []
    for i, v in enumerate(items if isinstance(items, list) else []):
        where = f"templating.list[{i}]"
        if not isinstance(v, dict):
            raise DashboardError("a variable must be a JSON object", where)
        name = v.get("name")
        if not isinstance(name, str) or not re.match(r"^\w+$", name):
            raise DashboardError("variable name must be letters, digits or '_'", where + ".name")
        kind = v.get("type", "query")
        if kind not in VARIABLE_TYPES:
            v["heronUnsupported"] = f"variable type '{kind}' is not supported"
        query = v.get("query", "")
        if isinstance(query, dict):  # Grafana 9+: {"query": "label_values(...)", "refId": ...}
            query = query.get("query", "")
        v["query"] = query if isinstance(query, str) else ""
        v.pop("datasource", None)
        if kind == "query":
            v.pop("options", None)  # resolved live against the label API
        out.append(v)
    return out


def panel_count(model: dict[str, Any]) -> int:
    return sum(1 for p in model.get("panels", []) if p.get("type") != "row")
