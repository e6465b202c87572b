"""`/api/v1/status/config`, `/api/v1/alertmanagers` and `/api/v1/scrape_pools` next to the real
Prometheus given the same configuration: same shapes, same URLs, secrets hidden the same way."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import yaml

from heron.testing import HeronProcess, free_port
from tests.metrics.peers import PROMETHEUS, have, prometheus

PASSWORD = "s3cr3t-pw"  # a test secret that must never come back
PROXY_PASSWORD = "pr0xy-pw"


def shared_config(am_port: int) -> dict[str, Any]:
    return {
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}],
                                        "path_prefix": "/am"}]},
        "scrape_configs": [
            {"job_name": "guarded", "basic_auth": {"username": "u", "password": PASSWORD},
             "static_configs": [{"targets": [f"127.0.0.1:{free_port()}"]}]},
            {"job_name": "proxied", "proxy_url": f"http://user:{PROXY_PASSWORD}@127.0.0.1:3128",
             "static_configs": [{"targets": [f"127.0.0.1:{free_port()}"]}]},
        ],
    }


def _data(client: httpx.Client, base: str, path: str, **kw: Any) -> Any:
    r = client.get(base + path, **kw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]


@pytest.mark.peer
@pytest.mark.skipif(not have(PROMETHEUS), reason="prometheus binary absent")
def test_status_endpoints_match_prometheus() -> None:
    cfg = shared_config(free_port())
    with prometheus(cfg) as prom, HeronProcess(config=cfg) as heron, httpx.Client(timeout=10) as c:
        h = {"headers": heron.headers}
        # the Alertmanagers alerts go to: the same URL, /api/v2/alerts under path_prefix
        deadline = time.monotonic() + 30  # Prometheus discovers its Alertmanagers a moment after start
        while not (want := _data(c, prom.url, "/api/v1/alertmanagers"))["activeAlertmanagers"] \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        got = _data(c, heron.url, "/api/v1/alertmanagers", **h)
        assert got["activeAlertmanagers"] == want["activeAlertmanagers"]
        assert got["droppedAlertmanagers"] == want["droppedAlertmanagers"] == []
        # scrape pools: Prometheus' jobs, plus Heron's self-scrape job when it is on
        prom_pools = _data(c, prom.url, "/api/v1/scrape_pools")["scrapePools"]
        heron_pools = _data(c, heron.url, "/api/v1/scrape_pools", **h)["scrapePools"]
        assert sorted(prom_pools) == ["guarded", "proxied"]
        assert set(heron_pools) - set(prom_pools) <= {"heron"} and set(prom_pools) <= set(heron_pools)
        # the config: secrets hidden the way Prometheus hides them
        prom_yaml = _data(c, prom.url, "/api/v1/status/config")["yaml"]
        heron_yaml = _data(c, heron.url, "/api/v1/status/config", **h)["yaml"]
        for text in (prom_yaml, heron_yaml):
            assert PASSWORD not in text and PROXY_PASSWORD not in text
        jobs = {j["job_name"]: j for j in yaml.safe_load(heron_yaml)["scrape_configs"]}
        prom_jobs = {j["job_name"]: j for j in yaml.safe_load(prom_yaml)["scrape_configs"]}
        assert jobs["guarded"]["basic_auth"] == prom_jobs["guarded"]["basic_auth"] == \
            {"username": "u", "password": "<secret>"}
        assert jobs["proxied"]["proxy_url"] == prom_jobs["proxied"]["proxy_url"] == \
            "http://user:xxxxx@127.0.0.1:3128"
        # the API token is required, as for every Prometheus API call on Heron
        assert c.get(heron.url + "/api/v1/status/config").status_code == 401
