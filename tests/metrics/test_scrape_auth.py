"""Scraping over HTTPS with a private CA (tls_config.ca_file), with basic_auth and bearer tokens."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.metrics.helpers import samples, serve_wsgi
from tests.metrics.test_scrape import start_heron, wait_for


def _cert(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert




def guarded(expected: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"who are you\n"]
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [f"secret_metric{{q=\"{environ.get('QUERY_STRING', '')}\"}} 42\n".encode()]
    return app


async def test_https_basic_auth_bearer_and_params(tmp_path: Path) -> None:
    try:
        key, cert = _cert(tmp_path)
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - openssl is in Debian base
        pytest.fail(f"openssl could not make a test certificate: {exc}")
    (tmp_path / "token").write_text("tok-123\n")
    basic = "Basic " + base64.b64encode(b"user:pa:ss").decode()
    with serve_wsgi(guarded(basic), (key, cert)) as a, serve_wsgi(guarded("Bearer tok-123"), (key, cert)) as b:
        heron = await start_heron(tmp_path, [
            {"job_name": "basic", "scheme": "https", "scrape_interval": "1s", "params": {"module": ["x"]},
             "tls_config": {"ca_file": str(cert)}, "basic_auth": {"username": "user", "password": "pa:ss"},
             "static_configs": [{"targets": [a]}]},
            {"job_name": "bearer", "scheme": "https", "scrape_interval": "1s",
             "tls_config": {"ca_file": str(cert)}, "bearer_token_file": str(tmp_path / "token"),
             "static_configs": [{"targets": [b]}]},
            {"job_name": "untrusted", "scheme": "https", "scrape_interval": "1s",
             "static_configs": [{"targets": [b]}]},
            {"job_name": "wrongname", "scheme": "https", "scrape_interval": "1s",
             "tls_config": {"ca_file": str(cert), "server_name": "wrong.example"},
             "bearer_token_file": str(tmp_path / "token"), "static_configs": [{"targets": [b]}]},
        ])
        try:
            async def all_jobs() -> Any:
                rows = await samples(heron)
                ups = {r["labels"]["job"]: r["value"] for r in rows if r["metric"] == "up"}
                return rows if len(ups) == 4 else None
            rows = await wait_for(all_jobs)
            ups = {r["labels"]["job"]: r["value"] for r in rows if r["metric"] == "up"}
            assert ups == {"basic": 1.0, "bearer": 1.0, "untrusted": 0.0, "wrongname": 0.0}
            secret = {r["labels"]["job"]: r for r in rows if r["metric"] == "secret_metric"}
            assert secret["basic"]["value"] == 42 and secret["basic"]["labels"]["q"] == "module=x"
            assert "q" not in secret["bearer"]["labels"]  # empty label values are dropped
            manager = next(s for s in heron.services if s.name == "scrape")
            err = next(lp.health.last_error for c, lp in manager.targets() if c.job_name == "untrusted")
            assert "CERTIFICATE_VERIFY_FAILED" in err or "certificate" in err.lower()
            assert "pa:ss" not in err and "tok-123" not in err
        finally:
            await heron.stop()
