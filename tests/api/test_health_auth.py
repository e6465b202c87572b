"""Health endpoints are open; everything else needs a token; tokens are hashed at rest."""

from __future__ import annotations

import httpx

from heron.auth import INGEST, hash_token
from heron.metrics.remote_write_client import REMOTE_WRITE_HEADERS, encode_write_request
from heron.server import Heron


async def test_health_is_open_and_metrics_exposed(heron: Heron) -> None:
    transport = httpx.ASGITransport(app=heron.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as anon:
        assert (await anon.get("/-/healthy")).status_code == 200
        r = await anon.get("/-/ready")
        assert r.status_code == 200 and "Ready" in r.text
        m = await anon.get("/metrics")
        assert "heron_pipeline_queue_bytes" in m.text
        assert "heron_wal_fsync_duration_seconds_bucket" in m.text
        om = await anon.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.text.rstrip().endswith("# EOF")


async def test_ingest_needs_a_key_admin_or_ingest(heron: Heron) -> None:
    body = encode_write_request([({"__name__": "x"}, [(1, 1.0)])])
    key = heron.auth.create(INGEST, "prom")
    api_token = heron.auth.create("api", "grafana")
    transport = httpx.ASGITransport(app=heron.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://h", headers=REMOTE_WRITE_HEADERS) as c:
        assert (await c.post("/api/v1/write", content=body)).status_code == 401
        bad = await c.post("/api/v1/write", content=body, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await c.post("/api/v1/write", content=body,
                             headers={"Authorization": f"Bearer {api_token}"})).status_code == 401
        ok = await c.post("/api/v1/write", content=body, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 204
        basic = await c.post("/api/v1/write", content=body, auth=("prometheus", key))
        assert basic.status_code == 204
        admin = await c.post("/api/v1/write", content=body,
                             headers={"Authorization": "Bearer test-admin-token"})
        assert admin.status_code == 204
    heron.auth.revoke("prom", INGEST)
    assert heron.auth.kind_of(key) is None
    # Only hashes at rest.
    stored = [r["token_hash"] for r in heron.control.query("SELECT token_hash FROM tokens")]
    assert hash_token(key) in stored and key not in stored


def test_admin_token_generated_once_when_not_configured(tmp_path) -> None:
    from heron.auth import Auth
    from heron.control import ControlStore

    auth = Auth(ControlStore(tmp_path / "c.db"))
    token = auth.ensure_admin(None)
    assert token and token.startswith("heron_admin_") and len(token) > 40
    assert auth.ensure_admin(None) is None
    assert auth.kind_of(token) == "admin"
    # A configured token replaces (revokes) the generated one.
    assert auth.ensure_admin("configured") is None
    assert auth.kind_of(token) is None and auth.kind_of("configured") == "admin"


def test_a_token_revoked_elsewhere_is_refused_at_its_next_request(tmp_path) -> None:
    """Valid tokens are cached between changes of the control database; a revocation by another
    connection (`heron token revoke` in another process) or through this store ends that."""
    import sqlite3

    from heron import auth as auth_mod
    from heron.auth import Auth
    from heron.control import ControlStore

    store = ControlStore(tmp_path / "c.db")
    auth = Auth(store)
    key, other = auth.create(INGEST, "prom"), auth.create(INGEST, "otel")
    assert auth.kind_of(key) == INGEST and auth.kind_of(other) == INGEST
    queries = []
    store_query = store.query
    store.query = lambda sql, params=(): queries.append(sql) or store_query(sql, params)  # type: ignore[method-assign]
    assert auth.kind_of(key) == INGEST and queries == []  # cached: no query
    elsewhere = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    elsewhere.execute("UPDATE tokens SET revoked_at = 1 WHERE name = 'prom'")
    assert auth.kind_of(key) is None
    assert auth.kind_of(other) == INGEST
    auth.revoke("otel", INGEST)  # through this store
    assert auth.kind_of(other) is None
    assert auth.kind_of("heron_ingest_unknown") is None and len(auth._known) == 0  # only valid ones
    many = [auth.create(INGEST, f"k{i}") for i in range(auth_mod.CACHE_MAX + 5)]
    for t in many:
        assert auth.kind_of(t) == INGEST
    assert len(auth._known) <= auth_mod.CACHE_MAX
