"""gunicorn and uvicorn with several workers: prometheus_client multiprocess mode makes /metrics (served by
any one worker) report the requests of all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from heron.testing import free_port
from test_sdk_fastapi import samples

APP = textwrap.dedent("""
    import os
    from flask import Flask
    import heron_sdk

    app = Flask(__name__)

    @app.get("/orders/<int:order_id>")
    def order(order_id):
        return {"id": order_id, "pid": os.getpid()}

    heron_sdk.init(app, service="mp", tracing=False, logs=False, errors=False)
""")

GUNICORN_CONF = textwrap.dedent("""
    from prometheus_client import multiprocess

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)
""")


def test_gunicorn_workers_aggregate(tmp_path: Path) -> None:
    (tmp_path / "mp_app.py").write_text(APP)
    (tmp_path / "gunicorn_conf.py").write_text(GUNICORN_CONF)
    mpdir = tmp_path / "prom"
    mpdir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                             "-c", "gunicorn_conf.py", "mp_app:app"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        pids = set()
        for i in range(40):  # a new connection each time, so both workers answer
            pids.add(httpx.get(f"{url}/orders/{i}", timeout=5).json()["pid"])
        assert len(pids) == 2, "both workers should have served requests"
        got = samples(httpx.get(url + "/metrics", timeout=5).text)
        key = ("http_requests_total", (("method", "GET"), ("route", "/orders/<int:order_id>"), ("status", "200")))
        assert got[key] == 40
        assert got[("http_request_duration_seconds_count", (("method", "GET"), ("route", "/orders/<int:order_id>")))] == 40
        assert got[("http_requests_in_progress", (("method", "GET"), ("route", "/orders/<int:order_id>")))] == 0
    finally:
        proc.terminate()
        proc.wait(20)


ASGI_APP = textwrap.dedent("""
    import os
    from fastapi import FastAPI
    import heron_sdk

    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int):
        return {"id": order_id, "pid": os.getpid()}

    heron_sdk.init(app, service="mp", tracing=False, logs=False, errors=False)
""")


def test_uvicorn_workers_aggregate(tmp_path: Path) -> None:
    (tmp_path / "mp_asgi.py").write_text(ASGI_APP)
    mpdir = tmp_path / "prom"
    mpdir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--workers", "2", "--port", str(port),
                             "--log-level", "warning", "mp_asgi:app"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.1)
        pids = set()
        for i in range(60):
            pids.add(httpx.get(f"{url}/orders/{i}", timeout=5).json()["pid"])
        got = samples(httpx.get(url + "/metrics", timeout=5).text)
        key = ("http_requests_total", (("method", "GET"), ("route", "/orders/{order_id}"), ("status", "200")))
        assert got[key] == 60
        assert got[("http_requests_in_progress", (("method", "GET"), ("route", "/orders/{order_id}")))] == 0
        # the sum above only proves aggregation if both workers answered
        assert len(pids) == 2, pids
    finally:
        proc.terminate()
        proc.wait(20)
