"""Scrape transport settings Prometheus users carry over: tls_config.min_version/max_version and
proxy_url, against real local servers (a TLS 1.2-only target, a forward proxy)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from heron.config import load_config
from heron.exceptions import ConfigError
from heron.metrics.scrape_config import parse_scrape_configs
from tests.metrics.helpers import samples, serve_wsgi
from tests.metrics.test_scrape import start_heron, wait_for
from tests.metrics.test_scrape_auth import _cert


def metrics_app(seen: list[dict[str, Any]]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append({"host": environ.get("HTTP_HOST"), "uri": environ.get("RAW_URI") or environ.get("PATH_INFO")})
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [b"transport_metric 7\n"]
    return app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ups(heron: Any, jobs: int) -> dict[str, float]:
    async def ready() -> Any:
        rows = await samples(heron)
        ups = {r["labels"]["job"]: r["value"] for r in rows if r["metric"] == "up"}
        return ups if len(ups) == jobs else None
    return dict(await wait_for(ready))


async def test_tls_min_and_max_version_are_applied(tmp_path: Path) -> None:
    key, cert = _cert(tmp_path)
    seen: list[dict[str, Any]] = []
    with serve_wsgi(metrics_app(seen), (key, cert), tls_max=ssl.TLSVersion.TLSv1_2) as old, \
            serve_wsgi(metrics_app(seen), (key, cert)) as new:
        def job(name: str, target: str, **tls: str) -> dict[str, Any]:
            return {"job_name": name, "scheme": "https", "scrape_interval": "1s",
                    "tls_config": {"ca_file": str(cert), **tls}, "static_configs": [{"targets": [target]}]}
        heron = await start_heron(tmp_path, [
            job("tls12_ok", old, min_version="TLS12"),
            job("tls13_refused", old, min_version="TLS13"),  # the target cannot go above 1.2
            job("tls13_ok", new, min_version="TLS13"),
            job("capped", new, max_version="TLS12"),  # a 1.3 server still accepts 1.2
        ])
        try:
            ups = await _ups(heron, 4)
            assert ups == {"tls12_ok": 1.0, "tls13_refused": 0.0, "tls13_ok": 1.0, "capped": 1.0}
            manager = next(s for s in heron.services if s.name == "scrape")
            err = next(lp.health.last_error for c, lp in manager.targets() if c.job_name == "tls13_refused")
            assert "version" in err.lower() or "protocol" in err.lower(), err
        finally:
            await heron.stop()


class _Proxy:
    """A forward HTTP proxy on loopback: answers absolute-form requests itself and records them."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            while True:
                line = f.readline()
                if not line:
                    return
                self.requests.append(line.decode().strip())
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                body = b"through_proxy 1\n"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def close(self) -> None:
        self.sock.close()


async def test_proxy_url_carries_the_scrape(tmp_path: Path) -> None:
    proxy = _Proxy()
    target = f"127.0.0.1:{closed_port()}"  # nothing listens: only the proxy can answer
    try:
        heron = await start_heron(tmp_path, [
            {"job_name": "proxied", "scrape_interval": "1s", "proxy_url": f"http://127.0.0.1:{proxy.port}",
             "static_configs": [{"targets": [target]}]},
            {"job_name": "direct", "scrape_interval": "1s", "static_configs": [{"targets": [target]}]},
        ])
        try:
            ups = await _ups(heron, 2)
            assert ups == {"proxied": 1.0, "direct": 0.0}
            assert f"GET http://{target}/metrics HTTP/1.1" in proxy.requests
            rows = await samples(heron, "s.metric = 'through_proxy'")
            assert rows and rows[0]["labels"]["job"] == "proxied" and rows[0]["value"] == 1.0
        finally:
            await heron.stop()
    finally:
        proxy.close()


async def test_no_proxy_sends_exempt_targets_direct(tmp_path: Path) -> None:
    """With `no_proxy`, Prometheus' proxy rules (Go's httpproxy) apply: a target it lists, and
    any loopback target, is scraped directly; the others still go through proxy_url."""
    proxy = _Proxy()
    seen: list[dict[str, Any]] = []
    try:
        with serve_wsgi(metrics_app(seen)) as direct:
            heron = await start_heron(tmp_path, [
                {"job_name": "mixed", "scrape_interval": "1s", "proxy_url": f"http://127.0.0.1:{proxy.port}",
                 "no_proxy": "10.0.0.0/8, skip.test", "static_configs": [{"targets": ["via.test:9100", direct]}]},
            ])
            try:
                async def both() -> Any:
                    rows = await samples(heron, "s.metric IN ('through_proxy', 'transport_metric')")
                    got = {r["metric"]: r["labels"]["instance"] for r in rows}
                    return got if len(got) == 2 else None
                got = await wait_for(both)
                assert got == {"through_proxy": "via.test:9100", "transport_metric": direct}
                assert any(r.startswith("GET http://via.test:9100/metrics") for r in proxy.requests)
                assert not any(direct in r for r in proxy.requests) and seen  # loopback: direct
            finally:
                await heron.stop()
    finally:
        proxy.close()


def test_no_proxy_rules() -> None:
    """Go's httpproxy matching: CIDRs, IPs and names with optional ports, subdomains, `*`."""
    from heron.metrics.no_proxy import NoProxy

    rules = NoProxy.parse("10.0.0.0/8, example.com, .sub.org, *.wild.net, 192.168.1.5:8080, host:9100, [2001:db8::1]:80")
    for host, port, direct in [
            ("10.1.2.3", "80", True), ("11.0.0.1", "80", False), ("example.com", "80", True),
            ("a.example.com", "1", True), ("badexample.com", "80", False), ("sub.org", "80", False),
            ("x.sub.org", "80", True), ("wild.net", "80", False), ("a.wild.net", "80", True),
            ("192.168.1.5", "8080", True), ("192.168.1.5", "80", False), ("host", "9100", True),
            ("host", "9101", False), ("2001:db8::1", "80", True), ("2001:db8::1", "81", False),
            ("127.0.0.1", "80", True), ("::1", "80", True), ("localhost", "9", True), ("other", "1", False)]:
        assert rules.bypasses(host, port) == direct, (host, port)
    assert NoProxy.parse("*").bypasses("anything", "1")
    assert not NoProxy.parse("").bypasses("anything", "1")


@pytest.mark.parametrize(("item", "field", "text"), [
    ({"tls_config": {"min_version": "TLS14"}}, "tls_config.min_version", "unknown TLS version: TLS14"),
    ({"tls_config": {"min_version": "TLS13", "max_version": "TLS11"}}, "tls_config.max_version", "lower than"),
    ({"tls_config": {"cert_file": "c.pem"}}, "tls_config.key_file", "must both be specified"),
    ({"proxy_url": "ftp://user:hunter2@proxy:21"}, "proxy_url", "invalid proxy_url"),
    ({"proxy_url": "http://proxy:3128", "proxy_from_environment": True}, "proxy_from_environment",
     "must not be configured"),
    ({"no_proxy": "example.com"}, "no_proxy", "if no_proxy is configured, proxy_url must also be configured"),
    ({"no_proxy": "example.com", "proxy_from_environment": True}, "no_proxy",
     "if proxy_from_environment is configured, no_proxy must not be configured"),
    ({"no_proxy": ["a"], "proxy_url": "http://proxy:3128"}, "no_proxy", "must be a string"),
])
def test_transport_settings_are_validated(tmp_path: Path, item: dict[str, Any], field: str, text: str) -> None:
    path = tmp_path / "heron.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": [
        {"job_name": "j", "static_configs": [{"targets": ["h:1"]}], **item}]}))
    config = load_config(path, environ={})
    with pytest.raises(ConfigError) as e:
        parse_scrape_configs(config)
    assert e.value.field is not None and e.value.field.endswith(field), e.value.field
    assert text in str(e.value) and "hunter2" not in str(e.value)


def test_openssl_is_there() -> None:
    """The TLS test makes its certificate with openssl (Debian base); fail loudly if it is gone."""
    assert subprocess.run(["openssl", "version"], capture_output=True).returncode == 0
