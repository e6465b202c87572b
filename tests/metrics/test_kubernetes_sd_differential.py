"""Differential against the real Prometheus, split at the discovery boundary.

The Debian prometheus 2.42 binary is built without discovery/kubernetes (only aws, azure, dns,
file, gce, http, ...), so it cannot watch a Kubernetes API itself. Heron watches a fake Kubernetes
API server (real HTTP, list + watch); the label sets it discovered are then handed, unchanged, to
the real Prometheus through `http_sd_configs`, with each job's relabel_configs (the seed's pod job
verbatim among them). `/api/v1/targets` of both must agree on the discovered and final labels of
active and dropped targets, before and after watch events. The meta labels themselves are checked
against Prometheus 2.42's discovery code in test_kubernetes_sd.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from heron.testing import free_port
from tests.metrics import peers
from tests.metrics.k8s_fake import FakeKubernetes, endpoints, endpointslice, ingress, node, pod, service
from tests.metrics.test_scrape import start_heron, wait_for

SEED_RELABEL = [  # the seed's pod job (seeds/004), verbatim
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": True},
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "action": "replace",
     "target_label": "__metrics_path__", "regex": "(.+)"},
    {"source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"], "action": "replace",
     "regex": "([^:]+)(?::\\d+)?;(\\d+)", "replacement": "$1:$2", "target_label": "__address__"},
    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
    {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace", "target_label": "kubernetes_namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "action": "replace", "target_label": "kubernetes_pod_name"},
]
SCRAPE = {"scrape_interval": "1m", "scrape_timeout": "1s"}


def populate(k8s: FakeKubernetes) -> None:
    k8s.put("nodes", node("node-1", addresses=[("InternalIP", "10.0.0.1"), ("Hostname", "node-1"),
                                               ("ExternalIP", "203.0.113.7")],
                          labels={"kubernetes.io/hostname": "node-1", "topology.kubernetes.io/zone": "a"},
                          annotations={"node.alpha.kubernetes.io/ttl": "0"}, provider_id="kind://docker/node-1"))
    k8s.put("nodes", node("node-2", addresses=[("Hostname", "node-2.local")], kubelet_port=10255))
    k8s.put("pods", pod("web-1", labels={"app": "web", "app.kubernetes.io/name": "web", "pod-template-hash": "x1"},
                        annotations={"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
                                     "prometheus.io/path": "/stats"}))
    db = pod("db-0", ip="127.0.0.3", namespace="data", labels={"app": "db"},
             annotations={"prometheus.io/scrape": "true"})
    db["status"]["containerStatuses"] = [{"name": "app", "containerID": "containerd://0123abcd"}]
    k8s.put("pods", db)
    k8s.put("pods", pod("web-2", ip="127.0.0.2", labels={"app": "web"}, ready="False",
                        annotations={"prometheus.io/scrape": "false"},
                        containers=[{"name": "app", "image": "example/app:1.0", "ports": [
                            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"containerPort": 9000, "protocol": "UDP"}]},
                            {"name": "sidecar", "image": "envoy:1"}]))
    k8s.put("pods", pod("pending", ip="", labels={"app": "web"}))
    k8s.put("services", service("web", labels={"app": "web", "team.io/owner": "a"},
                                annotations={"prometheus.io/probe": "true"},
                                ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                       {"name": "metrics", "port": 9100, "protocol": "TCP"}]))
    k8s.put("services", service("ext", namespace="data", type_="ExternalName", external_name="db.example.com",
                                ports=[{"port": 5432, "protocol": "TCP"}]))
    k8s.put("endpoints", endpoints("web", labels={"app": "web", "endpointslice.kubernetes.io/skip": "1"}, subsets=[{
        "addresses": [{"ip": "127.0.0.1", "nodeName": "node-1", "hostname": "web-1",
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}},
                      {"ip": "10.1.1.1"}],
        "notReadyAddresses": [{"ip": "127.0.0.2", "nodeName": "node-1",
                               "targetRef": {"kind": "Pod", "name": "web-2", "namespace": "default"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]))


def populate_v1(k8s: FakeKubernetes) -> None:
    k8s.put("endpointslices", endpointslice("web-x1", "web", endpoints=[
        {"addresses": ["127.0.0.1"], "conditions": {"ready": True}, "nodeName": "node-1",
         "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}},
        {"addresses": ["10.1.1.1"], "conditions": {"ready": False}, "hostname": "ext-1"}],
        ports=[{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]))
    k8s.put("ingresses", ingress("shop", class_name="nginx", tls_hosts=["*.example.com"], rules=[
        {"host": "www.example.com", "http": {"paths": [{"path": "/api", "pathType": "Prefix"}]}},
        {"host": "example.org"}]))


def jobs(api: str) -> list[dict[str, Any]]:
    sd = {"api_server": api}
    return [
        {"job_name": "pods", **SCRAPE, "kubernetes_sd_configs": [{"role": "pod", **sd}],
         "relabel_configs": SEED_RELABEL},
        {"job_name": "pods-data", **SCRAPE, "kubernetes_sd_configs": [
            {"role": "pod", **sd, "namespaces": {"names": ["data"]}}],
         "relabel_configs": [{"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
        # Relabeling that adds no label: Prometheus' discoveredLabels of active targets stay intact.
        {"job_name": "pods-ready", **SCRAPE, "kubernetes_sd_configs": [{"role": "pod", **sd}],
         "relabel_configs": [{"source_labels": ["__meta_kubernetes_pod_ready"], "regex": "true", "action": "keep"}]},
        {"job_name": "pods-selected", **SCRAPE, "kubernetes_sd_configs": [
            {"role": "pod", **sd, "selectors": [{"role": "pod", "label": "app=web"}]}],
         "relabel_configs": [{"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
        {"job_name": "services", **SCRAPE, "kubernetes_sd_configs": [{"role": "service", **sd}],
         "relabel_configs": [{"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
        {"job_name": "endpoints", **SCRAPE, "kubernetes_sd_configs": [{"role": "endpoints", **sd}],
         "relabel_configs": [{"source_labels": ["__meta_kubernetes_endpoint_ready"], "regex": "true",
                              "action": "keep"},
                             {"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
        {"job_name": "endpointslices", **SCRAPE, "kubernetes_sd_configs": [{"role": "endpointslice", **sd}],
         "relabel_configs": [{"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
        {"job_name": "ingresses", **SCRAPE, "kubernetes_sd_configs": [{"role": "ingress", **sd}],
         "relabel_configs": [{"source_labels": ["__meta_kubernetes_ingress_scheme"], "target_label": "__scheme__"},
                             {"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
        {"job_name": "nodes", **SCRAPE, "kubernetes_sd_configs": [{"role": "node", **sd}],
         "relabel_configs": [{"action": "labelmap", "regex": "__meta_kubernetes_(.+)"}]},
    ]


SCRAPE_DEFAULTS = ("job", "__scheme__", "__metrics_path__", "__scrape_interval__", "__scrape_timeout__")


class HttpSD:
    """Serves, per job, the label sets Heron discovered as an http_sd target list."""

    def __init__(self) -> None:
        self.groups: dict[str, list[dict[str, Any]]] = {}
        sd = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps(sd.groups.get(self.path.strip("/"), [])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def publish(self, heron_targets: dict[str, Any]) -> None:
        groups: dict[str, list[dict[str, Any]]] = {}
        found = [t["discoveredLabels"] for t in heron_targets["activeTargets"] + heron_targets["droppedTargets"]]
        for labels in found:
            meta = {k: v for k, v in labels.items() if k not in SCRAPE_DEFAULTS and k != "__address__"}
            groups.setdefault(labels["job"], []).append({"targets": [labels["__address__"]], "labels": meta})
        self.groups = groups

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def as_http_sd(cfg: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    return [{**{k: v for k, v in job.items() if k != "kubernetes_sd_configs"},
             "http_sd_configs": [{"url": f"{url}/{job['job_name']}", "refresh_interval": "1s"}]} for job in cfg]


INTACT = {"pods-ready"}


def digest(data: dict[str, Any]) -> dict[str, list[str]]:
    """Per job: sorted JSON of the labels of active targets and the discovered labels of dropped ones.

    (Prometheus 2.42 reuses the discovered label slice as the relabeling buffer, so the
    discoveredLabels it shows for active targets are overwritten whenever relabeling adds labels;
    the jobs labelmap all meta labels instead, so the final labels carry them. Active discovered
    labels are compared for the INTACT jobs, whose relabeling adds nothing.)"""
    out: dict[str, list[str]] = {}
    for t in data["activeTargets"]:
        found = {k: v for k, v in t["discoveredLabels"].items() if k != "__meta_url"} \
            if t["scrapePool"] in INTACT else {}
        out.setdefault(t["scrapePool"], []).append(json.dumps(["active", t["labels"], found], sort_keys=True))
    for t in data["droppedTargets"]:
        found = {k: v for k, v in t["discoveredLabels"].items() if k != "__meta_url"}
        out.setdefault(found.get("job", "?"), []).append(json.dumps(["dropped", found], sort_keys=True))
    return {k: sorted(v) for k, v in sorted(out.items())}


def diff(a: dict[str, list[str]], b: dict[str, list[str]]) -> str:
    lines = []
    for job in sorted(set(a) | set(b)):
        only_a = set(a.get(job, [])) - set(b.get(job, []))
        only_b = set(b.get(job, [])) - set(a.get(job, []))
        lines += [f"prometheus only [{job}]: {x}" for x in sorted(only_a)]
        lines += [f"heron only [{job}]: {x}" for x in sorted(only_b)]
    return "\n".join(lines)


@pytest.mark.peer
@pytest.mark.skipif(not peers.have(peers.PROMETHEUS), reason="prometheus binary not installed")
async def test_same_targets_as_prometheus(tmp_path: Path) -> None:
    sd = HttpSD()
    with FakeKubernetes() as k8s:
        populate(k8s)
        populate_v1(k8s)
        cfg = jobs(k8s.url)
        heron = await start_heron(tmp_path, cfg)
        transport = httpx.ASGITransport(app=heron.app())
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://h",
                                         headers={"Authorization": "Bearer test-admin-token"}) as client:
                async def heron_targets() -> dict[str, Any]:
                    r = await client.get("/api/v1/targets", params={"state": "any"})
                    return r.json()["data"]  # type: ignore[no-any-return]

                await wait_for(lambda: heron_digest_ready(heron), timeout=20)
                sd.publish(await heron_targets())
                with peers.prometheus({"scrape_configs": as_http_sd(cfg, sd.url)}) as prom:
                    async def agree(check: Any) -> dict[str, list[str]]:
                        last: list[Any] = [{}, {}]

                        async def same() -> bool:
                            h = await heron_targets()
                            sd.publish(h)
                            p = await asyncio.to_thread(httpx.get, prom.url + "/api/v1/targets",
                                                        params={"state": "any"})
                            last[:] = [digest(p.json()["data"]), digest(h)]
                            return bool(last[0] == last[1] and check(last[1]))
                        try:
                            await wait_for(same, timeout=30, every=0.5)
                        except AssertionError:
                            raise AssertionError("targets differ:\n" + diff(*last)) from None
                        return last[1]  # type: ignore[no-any-return]

                    got = await agree(lambda d: len(d) == 9)
                    assert len(got["pods"]) == 5  # web-1 and db-0 kept, web-2's 3 containers/ports dropped
                    assert sum(x.startswith('["active"') for x in got["pods"]) == 2
                    assert len(got["nodes"]) == 2 and len(got["services"]) == 3
                    assert len(got["pods-data"]) == 1 and len(got["pods-selected"]) == 4
                    ready = [x for x in got["pods-ready"] if x.startswith('["active"')]
                    assert len(ready) == 2 and all("__meta_kubernetes_pod_container_port_number" in x for x in ready)
                    assert sum('"__meta_kubernetes_pod_container_id": "containerd://0123abcd"' in x for x in ready) == 1
                    assert len(got["endpoints"]) == 4  # 2 ready, 1 not ready, 1 uncovered container port
                    assert len(got["endpointslices"]) == 2 and len(got["ingresses"]) == 2
                    assert any('"instance": "www.example.com:443"' in x for x in got["ingresses"])

                    # Watch events: a pod turns scrape=false, another is deleted, a service appears.
                    k8s.put("pods", pod("web-1", labels={"app": "web"},
                                        annotations={"prometheus.io/scrape": "false"}))
                    k8s.delete("pods", "db-0", "data")
                    k8s.put("services", service("api", namespace="data", ports=[{"port": 8443, "protocol": "TCP",
                                                                                  "name": "https"}]))
                    got = await agree(lambda d: len(d.get("services", [])) == 4
                                      and not any('"active"' in x for x in d.get("pods", []))
                                      and "pods-data" not in d)
        finally:
            await heron.stop()
            sd.close()
    assert not k8s.unknown, k8s.unknown


def heron_digest_ready(heron: Any) -> bool:
    manager: Any = next(s for s in heron.services if s.name == "scrape")
    return all(inf.synced for _, ds in manager.k8s.values() for d in ds for inf in d.informers) \
        and len(manager.k8s) == 9
