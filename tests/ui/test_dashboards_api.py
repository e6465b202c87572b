"""Dashboards API (Heron and Grafana paths), built-in provisioning, provisioning from files."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from heron.exceptions import ConfigError
from heron.server import Heron
from heron.ui.provision import step_cache, validate
from tests.conftest import make_config

SEED = Path(__file__).parent / "testdata" / "app_performance.grafana.json"


async def test_builtins_are_provisioned_once(heron: Heron, client: httpx.AsyncClient) -> None:
    uids = {d["uid"] for d in (await client.get("/api/heron/dashboards")).json()}
    assert {"heron-self", "heron-system", "heron-app-performance", "heron-database", "heron-ai",
            "heron-storage-cache", "heron-security", "heron-business"} <= uids
    assert (await client.delete("/api/heron/dashboards/heron-business")).status_code == 200
    from heron.ui.provision import provision_builtins
    from heron.ui.store import DashboardStore

    assert provision_builtins(DashboardStore(heron.control)) == []  # a deleted built-in stays deleted
    assert (await client.get("/api/heron/dashboards/heron-business")).status_code == 404


async def test_grafana_import_roundtrip(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/dashboards/db", content=SEED.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json()["uid"] == "app-perf-seed" and r.json()["unsupported"] == ["Service map"]
    got = (await client.get("/api/dashboards/uid/app-perf-seed")).json()
    assert got["dashboard"]["panels"][0]["type"] == "timeseries" and got["meta"]["provisioned"] is False
    search = (await client.get("/api/search", params={"query": "application"})).json()
    assert sorted(s["uid"] for s in search) == ["app-perf-seed", "heron-app-performance"]
    # overwrite=false refuses to replace it; a stale version is refused too.
    doc = json.loads(SEED.read_text())
    doc["overwrite"] = False
    assert (await client.post("/api/dashboards/db", json=doc)).status_code == 412
    model = got["dashboard"]
    model["title"] = "Renamed"
    r = await client.put("/api/heron/dashboards/app-perf-seed?check_version=1", json=model)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await client.put("/api/heron/dashboards/app-perf-seed?check_version=1", json=model)
    assert r.status_code == 412 and "changed since it was loaded" in r.json()["error"]


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "invalid JSON at line 1"),
    (b'{"title": ""}', 400, "title: missing or empty"),
    (b'{"title": "x", "panels": [{"targets": {}}]}', 400, "panels[0].targets: must be a list"),
])
async def test_bad_dashboards_get_precise_errors(client: httpx.AsyncClient, body: bytes, status: int,
                                                 message: str) -> None:
    r = await client.post("/api/heron/dashboards", content=body)
    assert r.status_code == status and message in r.json()["error"]


async def test_dashboards_api_needs_auth(heron: Heron) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=heron.app()), base_url="http://h") as c:
        assert (await c.get("/api/heron/dashboards")).status_code == 401
        assert (await c.post("/api/dashboards/db", json={"title": "x"})).status_code == 401


async def test_tokens_api(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/heron/tokens", json={"name": "grafana", "kind": "api"})
    assert r.status_code == 201 and r.json()["token"].startswith("heron_api_")
    listed = (await client.get("/api/heron/tokens")).json()
    assert [(t["name"], t["kind"]) for t in listed if t["name"] == "grafana"] == [("grafana", "api")]
    assert not [t for t in listed if t["name"] == "ui-session"]  # browser sessions are not listed
    assert all("token" not in t and "token_hash" not in t for t in listed)
    async with httpx.AsyncClient(transport=client._transport, base_url="http://heron",
                                 headers={"Authorization": "Bearer " + r.json()["token"]}) as api_client:
        assert (await api_client.get("/api/heron/dashboards")).status_code == 200
        assert (await api_client.get("/api/heron/tokens")).status_code == 401  # admin only
    assert (await client.delete("/api/heron/tokens/grafana?kind=api")).status_code == 200
    assert (await client.post("/api/heron/tokens", json={"name": "", "kind": "api"})).status_code == 400
    assert (await client.post("/api/heron/tokens", json={"name": "x", "kind": "admin"})).status_code == 400


def test_provisioning_config_errors(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, ui={"dashboards": ["missing/"]})
    with pytest.raises(ConfigError, match=r"ui.dashboards\[0\]: no such file or folder"):
        validate(cfg)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ui\.theme: unknown key"):
        validate(make_config(tmp_path, ui={"theme": "x"}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ui\.query_cache\.ttl: expected one of max_mb, recent_ttl, steps_mb, ttl"):
        validate(make_config(tmp_path, ui={"query_cache": {"ttl": "1m"}}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ui\.query_cache\.size: expected one of"):
        validate(make_config(tmp_path, ui={"query_cache": {"size": 3}}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ui\.query_cache: must be a mapping"):
        validate(make_config(tmp_path, ui={"query_cache": 60}))  # type: ignore[arg-type]
    validate(make_config(tmp_path, ui={"query_cache": {"ttl": 0, "recent_ttl": 5, "max_mb": 8}}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ui\.warmup: must be true or false"):
        validate(make_config(tmp_path, ui={"warmup": "no"}))  # type: ignore[arg-type]
    validate(make_config(tmp_path, ui={"warmup": False}))  # type: ignore[arg-type]


async def test_step_cache_follows_the_config(heron: Heron, tmp_path: Path) -> None:
    """`ui.query_cache.steps_mb` sizes the engine's step cache; 0 turns it off (also on reload)."""
    assert heron.query_engine.head is not None and heron.query_engine.step_cache is not None
    assert heron.query_engine.step_cache.max_bytes == 128 << 20
    step_cache(heron, make_config(tmp_path, ui={"query_cache": {"steps_mb": 0}}))  # type: ignore[arg-type]
    assert heron.query_engine.step_cache is None
    step_cache(heron, make_config(tmp_path, ui={"query_cache": {"steps_mb": 16}}))  # type: ignore[arg-type]
    assert heron.query_engine.step_cache is not None and heron.query_engine.step_cache.max_bytes == 16 << 20
    with pytest.raises(ConfigError, match=r"ui\.query_cache\.steps_mb: expected"):
        validate(make_config(tmp_path, ui={"query_cache": {"steps_mb": -1}}))  # type: ignore[arg-type]


async def test_provisioning_from_files(tmp_path: Path) -> None:
    folder = tmp_path / "dash"
    folder.mkdir()
    (folder / "app.json").write_bytes(SEED.read_bytes())
    (folder / "broken.json").write_text("{")
    h = Heron(make_config(tmp_path, ui={"dashboards": [str(folder)]}))  # type: ignore[arg-type]
    await h.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app()), base_url="http://h",
                                     headers={"Authorization": "Bearer test-admin-token"}) as c:
            got = (await c.get("/api/dashboards/uid/app-perf-seed")).json()
            assert got["meta"]["provisioned"] is True and got["dashboard"]["title"] == "Application Performance"
    finally:
        await h.stop()


async def test_sentry_permalinks_lead_to_the_issue_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/errors/issues/42")
    assert r.status_code == 301 and r.headers["location"] == "/issues/42"


async def test_static_assets_are_served_with_types(client: httpx.AsyncClient) -> None:
    for path, ctype in (("/static/vendor/uPlot.iife.min.js", "javascript"), ("/static/css/heron.css", "text/css"),
                        ("/static/vendor/promql-editor.min.js", "javascript")):
        r = await client.get(path)
        assert r.status_code == 200 and ctype in r.headers["content-type"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/static/../api/ui.py")).status_code == 404


def test_check_config_validates_the_ui_section(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "heron.yml"
    cfg.write_text("storage:\n  data_dir: data\nui:\n  dashboards: [nowhere/]\n")
    out = subprocess.run([sys.executable, "-m", "heron", "check", "config", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert f"{cfg}:4: ui.dashboards[0]: no such file or folder" in out.stderr
