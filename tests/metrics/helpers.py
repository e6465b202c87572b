"""Helpers for metrics tests: a prometheus_client app in a thread, reading samples back."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from heron.server import Heron


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """A connection per thread: a client stuck in the TLS handshake (a scrape cancelled at its
    timeout on a loaded machine) cannot block the others or the shutdown."""

    daemon_threads = True


@contextmanager
def serve_wsgi(app: Any, tls: tuple[Path, Path] | None = None,
               tls_max: ssl.TLSVersion | None = None) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread (HTTPS with `tls` = (key, cert), at
    most TLS version `tls_max`); yields host:port."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[1], tls[0])
        if tls_max is not None:
            ctx.maximum_version = tls_max
        # The handshake runs in the connection's thread (at its first read), not in accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


async def samples(heron: Heron, where: str = "1") -> list[dict[str, Any]]:
    """Flush the pipeline and read every sample back (metric, labels, ts, value) ordered by ts."""
    await asyncio.to_thread(heron.pipeline.flush)
    db = heron.storage.database
    sql = (f"SELECT s.metric AS metric, s.labels AS labels, p.ts AS ts, p.value AS value, "
           f"reinterpretAsUInt64(p.value) AS bits FROM `{db}`.metric_samples AS p "
           f"INNER JOIN (SELECT series_id, any(metric) AS metric, any(labels) AS labels "
           f"FROM `{db}`.metric_series GROUP BY series_id) AS s ON s.series_id = p.series_id "
           f"WHERE {where} ORDER BY p.ts, s.metric")
    rows = (await asyncio.to_thread(heron.storage.execute, sql)).to_pylist()
    for r in rows:
        r["labels"] = dict(r["labels"])
    return rows


class Served:
    """An in-process Heron app on a real loopback socket (uvicorn in the test's event loop)."""

    def __init__(self, heron: Heron) -> None:
        import uvicorn

        from heron.testing import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(heron.app(), host="127.0.0.1", port=self.port,
                                                    lifespan="off", log_level="warning", access_log=False))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.get_running_loop().create_task(self.server._serve())
        while not self.server.started:
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


async def instant(heron: Heron, query: str) -> list[dict[str, Any]]:
    """Run a PromQL instant query through Heron's own /api/v1/query (end-to-end read path)."""
    import httpx

    await asyncio.to_thread(heron.pipeline.flush)
    transport = httpx.ASGITransport(app=heron.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://h",
                                 headers={"Authorization": "Bearer test-admin-token"}) as client:
        r = await client.get("/api/v1/query", params={"query": query})
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]  # type: ignore[no-any-return]
