"""Content-hashed static assets (heron.ui.assets) and the start-up warm-up (heron.ui.warmup)."""

from __future__ import annotations

import gzip
import re
import threading
import time
from pathlib import Path

import cramjam
import httpx
import numpy as np

from heron.api.ui import ASSETS, UI_DIR
from heron.metrics.model import labels_from
from heron.server import Heron
from heron.ui import warmup
from heron.ui.assets import IMMUTABLE, SHORT, Assets
from heron.ui.provision import Provisioner
from tests.conftest import make_config
from tests.ui.test_session import _browser, _login


async def test_pages_name_hashed_assets_served_immutable(heron: Heron, client: httpx.AsyncClient) -> None:
    async with await _browser(heron) as browser:
        await _login(browser)
        page = await browser.get("/d/heron")
    assert page.status_code == 200
    urls = set(re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text))
    assert {ASSETS.url("js/dashboard.js"), ASSETS.url("css/heron.css"), ASSETS.url("js/lib.js")} <= urls
    assert "/static/" not in page.text
    for url in urls:
        r = await client.get(url, headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200, url
        assert r.headers["cache-control"] == IMMUTABLE and r.headers["x-content-type-options"] == "nosniff"
        assert r.content == (UI_DIR / "static" / url.split("/", 3)[3]).read_bytes()
    r = await client.get(ASSETS.url("js/dashboard.js"))
    assert "javascript" in r.headers["content-type"]


async def test_compression_etag_and_other_versions(client: httpx.AsyncClient) -> None:
    raw = (UI_DIR / "static/vendor/promql-editor.min.js").read_bytes()
    url = ASSETS.url("vendor/promql-editor.min.js")
    async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        body = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == raw and len(body) < len(raw) // 2
    async with client.stream("GET", url, headers={"Accept-Encoding": "gzip, deflate, br"}) as r:
        body = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.headers["content-encoding"] == "br" and bytes(cramjam.brotli.decompress(body)) == raw
    small = await client.get(ASSETS.url("img/heron.svg"), headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 1 kB: not worth it
    r = await client.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert r.status_code == 304 and r.content == b""
    stale = await client.get("/assets/0123456789ab/js/lib.js")  # a page from before a restart
    assert stale.status_code == 200 and stale.headers["cache-control"] == SHORT
    head = await client.head(url, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.headers["content-length"] == str(len(raw)) and head.content == b""
    for bad in ("js/nope.js", "../api/ui.py", "%2e%2e/api/ui.py", ""):
        assert (await client.get(f"{ASSETS.prefix}/{bad}")).status_code == 404, bad
    assert (await client.get("/static/js/lib.js")).status_code == 200  # stable URLs still work


def test_version_follows_content(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "js/a.js").write_text("export const a = 1;\n")
    v1 = Assets(tmp_path).version
    assert Assets(tmp_path).version == v1
    (tmp_path / "js/a.js").write_text("export const a = 2;\n")
    assert Assets(tmp_path).version != v1


async def test_warmup_compiles_templates_and_indexes_the_head(heron: Heron) -> None:
    assert heron.head is not None
    for service in heron.services:  # the warm-up the start began in the background: done first
        if isinstance(service, Provisioner) and service._warm is not None:
            await service._warm
    now = int(time.time() * 1000)
    series = [labels_from({"__name__": "warm_total", "i": str(i)}) for i in range(3)]
    await heron.metrics_writer.write(series, np.array([1, 1, 1]), np.array([now] * 3, np.int64), np.ones(3))
    index = heron.head.index
    assert index._indexed < len(index.labels)  # the index is built lazily, on the first selector
    await warmup.warm(heron)
    from heron.api.ui import templates

    cached = {t.name for t in templates.env.cache.values()} if templates.env.cache is not None else set()
    assert {"dashboard.html", "base.html", "explore.html"} <= cached
    assert index._indexed == len(index.labels) >= 3  # caught up: no first-query cost


def test_prefault_runs_with_and_without_a_barrier() -> None:
    warmup.prefault(None)
    b = threading.Barrier(2)
    ts = [threading.Thread(target=warmup.prefault, args=(b,)) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert not any(t.is_alive() for t in ts) and not b.broken


async def test_warmup_can_be_turned_off(tmp_path: Path) -> None:
    h = Heron(make_config(tmp_path, ui={"warmup": False}))  # type: ignore[arg-type]
    await h.start()
    try:
        provisioner = next(s for s in h.services if isinstance(s, Provisioner))
        assert provisioner._warm is None
    finally:
        await h.stop()
