"""Grafana dashboard JSON import: what maps over, what becomes a placeholder, precise errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heron.ui.builtin import builtin_dashboards
from heron.ui.grafana import DashboardError, normalize, panel_count, parse

SEED = Path(__file__).parent / "testdata" / "app_performance.grafana.json"


def test_seed_style_dashboard_maps_over() -> None:
    model = normalize(parse(SEED.read_bytes()))
    assert model["uid"] == "app-perf-seed" and model["title"] == "Application Performance"
    types = [p["type"] for p in model["panels"]]
    assert types == ["timeseries", "timeseries", "stat", "nodeGraph", "row", "table"]  # grid order
    assert model["panels"][1]["fieldConfig"]["defaults"]["unit"] == "s"  # from the old yaxes
    assert model["panels"][2]["fieldConfig"]["defaults"]["unit"] == "percentunit"  # singlestat format
    assert "panels" not in model["panels"][4]  # the collapsed row's panels follow it
    assert model["panels"][3]["heronUnsupported"] == "panel type 'nodeGraph' is not supported by Heron yet"
    assert model["panels"][3]["targets"][0]["heronUnsupported"]
    assert all("datasource" not in p for p in model["panels"])
    assert [v["name"] for v in model["templating"]["list"]] == ["job", "quantile"]
    assert model["refresh"] == "30s" and model["time"] == {"from": "now-1h", "to": "now"}
    assert panel_count(model) == 5


def test_missing_layout_is_filled_in_reading_order() -> None:
    model = normalize({"title": "t", "panels": [{"type": "stat", "title": str(i)} for i in range(3)]})
    assert [p["gridPos"] for p in model["panels"]] == [
        {"x": 0, "y": 0, "w": 12, "h": 8}, {"x": 12, "y": 0, "w": 12, "h": 8}, {"x": 0, "y": 8, "w": 12, "h": 8}]


def test_old_rows_layout() -> None:
    model = normalize({"title": "old", "rows": [{"title": "R", "panels": [{"type": "graph", "span": 6,
                                                                          "targets": [{"expr": "up"}]}]}]})
    assert [p["type"] for p in model["panels"]] == ["row", "timeseries"]
    assert model["panels"][1]["gridPos"]["w"] == 12


@pytest.mark.parametrize(("doc", "message"), [
    ({"panels": []}, "title: missing or empty"),
    ({"title": "x", "uid": "a b"}, "uid: must be 1-40 letters"),
    ({"title": "x", "panels": {}}, "panels: must be a list"),
    ({"title": "x", "panels": [1]}, "panels[0]: a panel must be a JSON object"),
    ({"title": "x", "panels": [{"type": "row", "panels": [{"targets": [{"expr": 3}]}]}]},
     "panels[0].panels[0].targets[0].expr: must be a string"),
    ({"title": "x", "templating": {"list": [{"name": "a-b"}]}}, "templating.list[0].name"),
    ({"title": "x", "tags": "a"}, "tags: must be a list of strings"),
])
def test_errors_name_the_json_path(doc: dict, message: str) -> None:
    with pytest.raises(DashboardError) as exc:
        normalize(doc)
    assert message in str(exc.value)


def test_json_syntax_error_names_line_and_column() -> None:
    with pytest.raises(DashboardError, match="line 2 column 1"):
        parse('{"title": "x",\n}')
    with pytest.raises(DashboardError, match="JSON object"):
        parse("[]")


def test_builtins_are_valid_and_cover_the_issue() -> None:
    titles = set()
    for d in builtin_dashboards():
        model = normalize(json.loads(json.dumps(d)))
        titles.add(model["title"])
        assert panel_count(model) >= 6
        assert not [p for p in model["panels"] if p.get("heronUnsupported")]
        assert all(t["expr"] for p in model["panels"] for t in p["targets"])
    assert titles == {"Heron", "System overview", "Application performance", "Database", "AI services",
                      "Storage and cache", "Security", "Business KPIs"}
    exprs = " ".join(t["expr"] for d in builtin_dashboards() for p in d["panels"] for t in p.get("targets", []))
    for needle in ("histogram_quantile(0.99", "http_requests_in_progress", "topk(10", "llm_tokens_total",
                   "vector_search_duration_seconds_bucket", "node_cpu_seconds_total", "auth_failures_total"):
        assert needle in exprs


def test_singlestat_migrates_reducer_sparkline_thresholds_and_maps() -> None:
    model = normalize({"title": "Old", "panels": [
        {"type": "singlestat", "title": "Up", "valueName": "avg", "format": "none", "sparkline": {"show": True},
         "colorBackground": True, "thresholds": "0.5,0.9", "colors": ["red", "orange", "green"],
         "valueMaps": [{"op": "=", "value": "1", "text": "UP"}, {"op": "=", "value": "null", "text": "N/A"}],
         "rangeMaps": [{"from": "2", "to": "10", "text": "many"}, {"from": "x", "to": "1"}],
         "targets": [{"expr": "up"}]},
        {"type": "singlestat", "title": "Disk", "valueName": "current", "gauge": {"show": True, "minValue": 0,
                                                                                    "maxValue": 100},
         "targets": [{"expr": "disk"}]}]})
    stat, gauge = model["panels"]
    assert stat["type"] == "stat" and stat["options"] == {
        "reduceOptions": {"calcs": ["mean"]}, "graphMode": "area", "colorMode": "background"}
    d = stat["fieldConfig"]["defaults"]
    assert d["thresholds"] == {"mode": "absolute", "steps": [
        {"color": "red", "value": None}, {"color": "orange", "value": 0.5}, {"color": "green", "value": 0.9}]}
    assert d["mappings"] == [{"type": "value", "options": {"1": {"text": "UP"}}},
                             {"type": "range", "options": {"from": 2.0, "to": 10.0, "result": {"text": "many"}}}]
    assert gauge["type"] == "gauge" and gauge["options"]["reduceOptions"] == {"calcs": ["lastNotNull"]}
    assert gauge["fieldConfig"]["defaults"]["max"] == 100


def test_piechart_and_heatmap_are_supported_and_old_shapes_convert() -> None:
    model = normalize({"title": "Dist", "panels": [
        {"type": "grafana-piechart-panel", "title": "Old pie", "valueName": "total", "pieType": "donut",
         "format": "bytes", "targets": [{"expr": "sum by (job) (x)"}]},
        {"type": "piechart", "title": "New pie", "options": {"pieType": "pie"}, "targets": [{"expr": "y"}]},
        {"type": "heatmap", "title": "Old heatmap", "color": {"colorScheme": "interpolateBlues"},
         "targets": [{"expr": "sum by (le) (rate(h_bucket[5m]))", "format": "heatmap"}]},
        {"type": "heatmap", "title": "New heatmap", "options": {"color": {"scheme": "Greens"}}, "targets": [{"expr": "z"}]},
        {"type": "heatmap", "title": "Old calculated", "yBucketNumber": 8, "yAxis": {"logBase": 10},
         "legend": {"show": False}, "targets": [{"expr": "w"}]},
        {"type": "heatmap", "title": "Old sized", "yBucketSize": 0.5, "yAxis": {"logBase": 1}, "targets": [{"expr": "v"}]},
    ]})
    old, new, old_hm, new_hm, calc_hm, sized_hm = model["panels"]
    assert not any(p.get("heronUnsupported") for p in model["panels"])
    assert old["type"] == "piechart" and old["options"] == {"reduceOptions": {"calcs": ["sum"]}, "pieType": "donut"}
    assert old["fieldConfig"]["defaults"]["unit"] == "bytes"
    assert new["options"] == {"pieType": "pie"}
    assert old_hm["options"] == {"color": {"scheme": "Blues"}}
    assert new_hm["options"] == {"color": {"scheme": "Greens"}}
    assert calc_hm["options"] == {"calculation": {"yBuckets": {"mode": "count", "value": "8",
                                                               "scale": {"type": "log", "log": 10}}},
                                  "legend": {"show": False}}
    assert sized_hm["options"] == {"calculation": {"yBuckets": {"mode": "size", "value": "0.5"}}}
