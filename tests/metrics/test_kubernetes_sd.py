"""kubernetes_sd_configs: meta labels per role (Prometheus 2.42's discovery/kubernetes), config
errors, list + watch against a fake API server (410 Gone, API server down, selectors, auth), and
the seed's pod job end to end: in-cluster config, annotated pods scraped, deleted and un-annotated
pods going stale."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge

from heron.config import load_config
from heron.exceptions import ConfigError
from heron.metrics import kubernetes_sd
from heron.metrics import kubernetes_sd_roles as roles
from heron.metrics.kubernetes_sd_kubeconfig import load_kubeconfig
from heron.metrics.model import STALE_NAN_BITS
from heron.metrics.scrape_config import parse_scrape_configs
from heron.testing import free_port
from tests.metrics.helpers import samples, serve_wsgi
from tests.metrics.k8s_fake import FakeKubernetes, endpoints, endpointslice, ingress, node, pod, service
from tests.metrics.test_scrape import SwappableApp, start_heron, wait_for

M = "__meta_kubernetes_"


# --- meta labels, as Prometheus 2.42 builds them ------------------------------------------------

def test_pod_targets_containers_ports_init_and_ids() -> None:
    p = pod("web-1", ip="10.1.2.3", labels={"app.kubernetes.io/name": "web"}, annotations={"prometheus.io/scrape": "true"},
            containers=[{"name": "app", "image": "app:1", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9000, "protocol": "UDP"}]},
                {"name": "side", "image": "envoy:1"}],
            init_containers=[{"name": "init", "image": "busybox:1"}])
    p["status"]["containerStatuses"] = [{"name": "app", "containerID": "containerd://abc"}]
    p["status"]["initContainerStatuses"] = [{"name": "init", "containerID": "containerd://def"}]
    targets = roles.pod_targets(p)
    assert [a for a, _ in targets] == ["10.1.2.3:8080", "10.1.2.3:9000", "10.1.2.3", "10.1.2.3"]
    group = {M + "namespace": "default", M + "pod_name": "web-1", M + "pod_ip": "10.1.2.3", M + "pod_ready": "true",
             M + "pod_phase": "Running", M + "pod_node_name": "node-1", M + "pod_host_ip": "10.0.0.1",
             M + "pod_uid": "", M + "pod_controller_kind": "ReplicaSet", M + "pod_controller_name": "web-1-rs",
             M + "pod_label_app_kubernetes_io_name": "web", M + "pod_labelpresent_app_kubernetes_io_name": "true",
             M + "pod_annotation_prometheus_io_scrape": "true",
             M + "pod_annotationpresent_prometheus_io_scrape": "true"}
    assert targets[0][1] == {**group, "__address__": "10.1.2.3:8080", M + "pod_container_name": "app",
                             M + "pod_container_id": "containerd://abc", M + "pod_container_image": "app:1",
                             M + "pod_container_init": "false", M + "pod_container_port_name": "http",
                             M + "pod_container_port_number": "8080", M + "pod_container_port_protocol": "TCP"}
    assert targets[1][1][M + "pod_container_port_name"] == ""  # unnamed port: "" (dropped later)
    assert targets[2][1] == {**group, "__address__": "10.1.2.3", M + "pod_container_name": "side",
                             M + "pod_container_id": "", M + "pod_container_image": "envoy:1",
                             M + "pod_container_init": "false"}
    assert targets[3][1][M + "pod_container_init"] == "true"
    assert targets[3][1][M + "pod_container_id"] == "containerd://def"
    # No IP yet (pending, evicted): no targets. No Ready condition: "unknown".
    assert roles.pod_targets(pod("p", ip="")) == []
    p2 = pod("p")
    p2["status"]["conditions"] = []
    assert roles.pod_targets(p2)[0][1][M + "pod_ready"] == "unknown"
    # attach_metadata.node: the node's name and labels; nothing for an unknown node.
    nodes = {("", "node-1"): node("node-1", addresses=[("InternalIP", "10.0.0.1")], labels={"zone/x": "a"})}
    got = roles.pod_targets(pod("p"), nodes)[0][1]
    assert got[M + "node_name"] == "node-1" and got[M + "node_label_zone_x"] == "a"
    assert got[M + "node_labelpresent_zone_x"] == "true"
    assert M + "node_name" not in roles.pod_targets(pod("p", node="gone"), nodes)[0][1]


def test_service_targets() -> None:
    svc = service("web", labels={"a.b/c": "1"}, annotations={"x-y": "2"},
                  ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    [(addr, labels)] = roles.service_targets(svc)
    assert addr == "web.default.svc:80"
    assert labels == {"__address__": addr, M + "namespace": "default", M + "service_name": "web",
                      M + "service_label_a_b_c": "1", M + "service_labelpresent_a_b_c": "true",
                      M + "service_annotation_x_y": "2", M + "service_annotationpresent_x_y": "true",
                      M + "service_port_name": "http", M + "service_port_number": "80",
                      M + "service_port_protocol": "TCP", M + "service_type": "ClusterIP",
                      M + "service_cluster_ip": "10.96.0.10"}
    [(_, ext)] = roles.service_targets(service("ext", type_="ExternalName", external_name="db.example.com"))
    assert ext[M + "service_external_name"] == "db.example.com" and M + "service_cluster_ip" not in ext


def test_endpoints_targets_pods_services_and_uncovered_ports() -> None:
    web1 = pod("web-1", ip="10.1.0.1", labels={"app": "web"}, containers=[{"name": "app", "image": "app:1", "ports": [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "admin", "containerPort": 9090}]}])
    eps = endpoints("web", labels={"svc.io/x": "y"}, subsets=[{
        "addresses": [{"ip": "10.1.0.1", "nodeName": "node-1", "hostname": "h1",
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}},
                      {"ip": "192.168.0.9"}],
        "notReadyAddresses": [{"ip": "10.1.0.2"}],
        "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]}])
    services = {("default", "web"): service("web", labels={"app": "web"})}
    targets = roles.endpoints_targets(eps, services, {("default", "web-1"): web1})
    assert [a for a, _ in targets] == ["10.1.0.1:8080", "192.168.0.9:8080", "10.1.0.2:8080", "10.1.0.1:9090"]
    first = targets[0][1]
    assert first[M + "endpoints_name"] == "web" and first[M + "service_name"] == "web"
    assert first[M + "service_label_app"] == "web" and first[M + "endpoints_label_svc_io_x"] == "y"
    assert first[M + "endpoints_labelpresent_svc_io_x"] == "true"
    assert first[M + "endpoint_ready"] == "true" and first[M + "endpoint_port_name"] == "web"
    assert first[M + "endpoint_address_target_kind"] == "Pod" and first[M + "endpoint_address_target_name"] == "web-1"
    assert first[M + "endpoint_node_name"] == "node-1" and first[M + "endpoint_hostname"] == "h1"
    assert first[M + "pod_name"] == "web-1" and first[M + "pod_container_name"] == "app"
    assert first[M + "pod_container_port_name"] == "http" and first[M + "pod_container_port_number"] == "8080"
    assert M + "pod_name" not in targets[1][1] and M + "endpoint_address_target_kind" not in targets[1][1]
    assert targets[2][1][M + "endpoint_ready"] == "false"
    uncovered = targets[3][1]  # the pod's port no endpoint port covers: a target of its own
    assert M + "endpoint_ready" not in uncovered and uncovered[M + "pod_container_port_name"] == "admin"
    assert uncovered[M + "service_name"] == "web"
    # Without the service object, no service labels.
    assert M + "service_name" not in roles.endpoints_targets(eps, {}, {})[0][1]


def test_endpointslice_targets() -> None:
    web1 = pod("web-1", ip="10.1.0.1", containers=[{"name": "app", "image": "app:1", "ports": [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "admin", "containerPort": 9090}]}])
    eps = endpointslice("web-abc", "web", endpoints=[
        {"addresses": ["10.1.0.1"], "conditions": {"ready": True}, "hostname": "h1", "nodeName": "node-1",
         "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"},
         "deprecatedTopology": {"topology.kubernetes.io/zone": "a"}},
        {"addresses": ["10.1.0.7"], "conditions": {"ready": False}}],
        ports=[{"name": "web", "port": 8080, "protocol": "TCP", "appProtocol": "http"}])
    services = {("default", "web"): service("web")}
    nodes = {("", "node-1"): node("node-1", addresses=[("InternalIP", "10.0.0.1")], labels={"k": "v"})}
    targets = roles.endpointslice_targets(eps, services, {("default", "web-1"): web1}, nodes)
    assert [a for a, _ in targets] == ["10.1.0.1:8080", "10.1.0.7:8080", "10.1.0.1:9090"]
    first = targets[0][1]
    assert {k: v for k, v in first.items() if k.startswith(M + "endpointslice")} == {
        M + "endpointslice_name": "web-abc", M + "endpointslice_address_type": "IPv4",
        M + "endpointslice_port_name": "web", M + "endpointslice_port_protocol": "TCP",
        M + "endpointslice_port": "8080", M + "endpointslice_port_app_protocol": "http",
        M + "endpointslice_endpoint_conditions_ready": "true", M + "endpointslice_endpoint_hostname": "h1",
        M + "endpointslice_address_target_kind": "Pod", M + "endpointslice_address_target_name": "web-1",
        M + "endpointslice_endpoint_topology_topology_kubernetes_io_zone": "a",
        M + "endpointslice_endpoint_topology_present_topology_kubernetes_io_zone": "true"}
    assert first[M + "service_name"] == "web" and first[M + "pod_container_port_name"] == "http"
    assert first[M + "node_name"] == "node-1" and first[M + "node_label_k"] == "v"
    assert targets[1][1][M + "endpointslice_endpoint_conditions_ready"] == "false"
    assert targets[2][1][M + "pod_container_port_name"] == "admin"
    # A port without a number: the bare address.
    bare = endpointslice("x", "none", endpoints=[{"addresses": ["10.9.9.9"]}], ports=[{"name": "p"}])
    assert roles.endpointslice_targets(bare, services, {})[0][0] == "10.9.9.9"


def test_ingress_targets() -> None:
    ing = ingress("shop", class_name="nginx", tls_hosts=["*.example.com"], labels={"team": "a"}, rules=[
        {"host": "www.example.com", "http": {"paths": [{"path": "/api", "pathType": "Prefix"}, {"pathType": "Prefix"}]}},
        {"host": "example.org"}])
    targets = roles.ingress_targets(ing)
    assert [(t[M + "ingress_scheme"], t[M + "ingress_host"], t[M + "ingress_path"]) for _, t in targets] == [
        ("https", "www.example.com", "/api"), ("https", "www.example.com", "/"), ("http", "example.org", "/")]
    assert targets[0][0] == "www.example.com" and targets[0][1][M + "ingress_class_name"] == "nginx"
    assert targets[0][1][M + "ingress_label_team"] == "a" and targets[0][1][M + "ingress_name"] == "shop"
    assert roles.ingress_targets(ingress("e", rules=[{"host": "a.b", "http": {"paths": []}}])) == []


def test_node_targets_address_priority() -> None:
    n = node("n1", addresses=[("Hostname", "n1.local"), ("ExternalIP", "1.2.3.4"), ("InternalIP", "10.0.0.5")],
             labels={"kubernetes.io/os": "linux"}, provider_id="aws:///i-1")
    [(addr, labels)] = roles.node_targets(n)
    assert addr == "10.0.0.5:10250" and labels["instance"] == "n1"
    assert labels[M + "node_address_InternalIP"] == "10.0.0.5" and labels[M + "node_address_Hostname"] == "n1.local"
    assert labels[M + "node_label_kubernetes_io_os"] == "linux" and labels[M + "node_provider_id"] == "aws:///i-1"
    assert roles.node_targets(node("n2", addresses=[("Hostname", "n2")]))[0][0] == "n2:10250"
    assert roles.node_targets(node("n3", addresses=[])) == []


# --- config errors -------------------------------------------------------------------------------

BAD = [
    ("- role: pods\n", 4, "kubernetes_sd_configs.0.role", "unknown Kubernetes SD role 'pods'"),
    ("- api_server: http://x\n", 4, "kubernetes_sd_configs.0.role", "role missing"),
    ("- role: ingress\n  selectors: [{role: pod}]\n", 5, "kubernetes_sd_configs.0.selectors.0.role",
     "ingress role supports only ingress selectors"),
    ("- role: pod\n  kubeconfig_file: /k\n  api_server: http://x\n", 5, "kubernetes_sd_configs.0.kubeconfig_file",
     "cannot use 'kubeconfig_file' and 'api_server' simultaneously"),
    ("- role: pod\n  kubeconfig_file: /k\n  bearer_token: t\n", 5, "kubernetes_sd_configs.0.kubeconfig_file",
     "custom HTTP client configuration together with 'kubeconfig_file'"),
    ("- role: pod\n  kubeconfig_file: /k\n  namespaces: {own_namespace: true}\n", 5,
     "kubernetes_sd_configs.0.kubeconfig_file", "'kubeconfig_file' and 'namespaces.own_namespace'"),
    ("- role: pod\n  bearer_token: x\n", 4, "kubernetes_sd_configs.0.api_server",
     "please provide the 'api_server' URL explicitly"),
    ("- role: pod\n  api_server: ftp://x\n", 5, "kubernetes_sd_configs.0.api_server", "http:// or https://"),
    ("- role: pod\n  api_server: http://x\n  namespaces: {own_namespace: true}\n", 6,
     "kubernetes_sd_configs.0.namespaces.own_namespace", "simultaneously"),
    ("- role: pod\n  selectors: [{role: node}]\n", 5, "kubernetes_sd_configs.0.selectors.0.role",
     "pod role supports only pod selectors"),
    ("- role: endpoints\n  selectors: [{role: pod}, {role: pod}]\n", 5,
     "kubernetes_sd_configs.0.selectors.1.role", "duplicated selector role: pod"),
    ("- role: pod\n  selectors: [{role: pod, label: 'app in (a'}]\n", 5,
     "kubernetes_sd_configs.0.selectors.0.label", "unable to parse requirement"),
    ("- role: pod\n  selectors: [{role: pod, field: 'status.phase'}]\n", 5,
     "kubernetes_sd_configs.0.selectors.0.field", "invalid selector"),
    ("- role: pod\n  rolee: x\n", 5, "kubernetes_sd_configs.0.rolee", "not found"),
    ("- role: node\n  preferred_node_address_types: [Hostname]\n", 5,
     "kubernetes_sd_configs.0.preferred_node_address_types", "not found"),
    ("- role: pod\n  api_server: http://x\n  proxy_url: http://p:3128\n  proxy_from_environment: true\n", 7,
     "kubernetes_sd_configs.0.proxy_from_environment", "proxy_url must not be configured"),
    ("- role: pod\n  api_server: https://x\n  tls_config: {min_version: TLS9}\n", 6,
     "kubernetes_sd_configs.0.tls_config.min_version", "unknown TLS version"),
    ("- role: pod\n  api_server: http://x\n  bearer_token_file: /nonexistent/t\n", 6,
     "kubernetes_sd_configs.0.bearer_token_file", "cannot read"),
]


@pytest.mark.parametrize(("sd", "line", "field", "message"), BAD)
def test_bad_configs_name_file_line_field(tmp_path: Path, sd: str, line: int, field: str, message: str) -> None:
    text = "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n" + \
        "".join(f"      {x}\n" for x in sd.splitlines())
    (tmp_path / "heron.yml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        parse_scrape_configs(load_config(tmp_path / "heron.yml", environ={}))
    err = str(exc.value)
    assert f"heron.yml:{line}:" in err and f"scrape_configs.0.{field}" in err and message in err, err


def test_good_config_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("s3cret\n")
    (tmp_path / "heron.yml").write_text(yaml.safe_dump({"scrape_configs": [{"job_name": "k", "kubernetes_sd_configs": [
        {"role": "endpoints", "api_server": "https://k8s:6443", "bearer_token_file": "tok",
         "tls_config": {"ca_file": "ca.crt", "insecure_skip_verify": False},
         "namespaces": {"names": ["a", "b"]}, "attach_metadata": {"node": True},
         "selectors": [{"role": "pod", "label": "app in (a,b),!legacy", "field": "spec.nodeName=n1"},
                       {"role": "endpoints", "label": "x!=y"}]}]}]}))
    [sc] = parse_scrape_configs(load_config(tmp_path / "heron.yml", environ={}))
    [sd] = sc.kubernetes_sd
    assert sd.role == "endpoints" and sd.namespaces == ("a", "b") and sd.attach_node
    assert sd.authorization == ("Bearer", "s3cret")
    assert dict(sd.tls)["ca_file"] == str(tmp_path / "ca.crt")
    assert sd.selector("pods") == ("app in (a,b),!legacy", "spec.nodeName=n1")
    assert sd.selector("endpoints") == ("x!=y", "") and sd.selector("services") == ("", "")
    # Logs show the API server without the credentials its URL may carry.
    shown = kubernetes_sd.ApiClient(kubernetes_sd.KubernetesSD(role="pod", api_server="http://u:pw@[::1]:6443"))
    assert shown.shown == "http://[::1]:6443" and "pw" not in shown.shown


def test_prometheus_yml_paths_and_seed_job_unchanged(tmp_path: Path) -> None:
    from heron.cli import _merge_prometheus

    promdir = tmp_path / "prom"
    promdir.mkdir()
    (promdir / "sa-token").write_text("t0k\n")
    prom = promdir / "prometheus.yml"
    jobs = yaml.safe_load(SEED_JOB)["scrape_configs"]
    jobs.append({"job_name": "remote", "kubernetes_sd_configs": [
        {"role": "node", "api_server": "https://k8s:6443", "bearer_token_file": "sa-token",
         "tls_config": {"ca_file": "ca.crt"}}]})
    prom.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}, "scrape_configs": jobs}))
    (tmp_path / "heron.yml").write_text("self_scrape: false\n")
    seed, remote = parse_scrape_configs(_merge_prometheus(load_config(tmp_path / "heron.yml", environ={}), str(prom)))
    assert seed.kubernetes_sd[0].role == "pod" and seed.kubernetes_sd[0].api_server is None
    assert len(seed.relabel) == 6 and seed.scrape_interval == 15
    assert remote.kubernetes_sd[0].authorization == ("Bearer", "t0k")
    assert dict(remote.kubernetes_sd[0].tls)["ca_file"] == str(promdir.resolve() / "ca.crt")


def test_discovery_drops_empty_labels_adds_default_port_and_shows_last_duplicate() -> None:
    from heron.metrics.discovery import FileSDState, build_targets
    from heron.metrics.scrape_config import ScrapeConfig

    sc = ScrapeConfig(job_name="j", scheme="https")
    found = [((("10.0.0.1",), {}), {M + "pod_container_name": "a", M + "pod_container_port_name": ""}),
             ((("10.0.0.1:443",), {}), {M + "pod_container_name": "b"}),
             ((("[fd00::1]",), {}), {}), ((("fd00::2",), {}), {})]
    active, dropped = build_targets(sc, FileSDState(), found)
    assert [t.labels["instance"] for t in active] == ["10.0.0.1:443", "[fd00::1]:443", "fd00::2"]
    # Both first targets become 10.0.0.1:443: one target, showing the last one's discovered labels.
    assert active[0].discovered[M + "pod_container_name"] == "b" and dropped == []
    assert all("" not in t.discovered.values() for t in active)


# --- list + watch against the fake API server ------------------------------------------------------

def _job(api: str, **sd: Any) -> dict[str, Any]:
    return {"job_name": "k", "scrape_interval": "1m", "kubernetes_sd_configs": [{"role": "pod", "api_server": api, **sd}]}


def _addresses(heron: Any) -> list[str]:
    manager: Any = next(s for s in heron.services if s.name == "scrape")
    return sorted(lp.target.labels["instance"] for c, lp in manager.targets() if c.job_name == "k")


async def test_watch_events_410_relist_selectors_and_auth(tmp_path: Path) -> None:
    with FakeKubernetes() as k8s:
        k8s.put("pods", pod("a", ip="10.0.0.1", labels={"app": "web"}))
        k8s.put("pods", pod("other", ip="10.0.0.9", labels={"app": "db"}))
        heron = await start_heron(tmp_path, [_job(k8s.url, authorization={"credentials": "tok-1"},
                                                  selectors=[{"role": "pod", "label": "app=web"}])])
        try:
            await wait_for(lambda: _addresses(heron) == ["10.0.0.1:8080"], timeout=10)
            k8s.put("pods", pod("b", ip="10.0.0.2", labels={"app": "web"}))  # ADDED through the watch
            await wait_for(lambda: _addresses(heron) == ["10.0.0.1:8080", "10.0.0.2:8080"], timeout=10)
            lists = sum("watch" not in r for r in k8s.requests)
            k8s.expire()  # 410 Gone: relist
            await wait_for(lambda: sum("watch" not in r for r in k8s.requests) > lists, timeout=10)
            k8s.delete("pods", "a")
            await wait_for(lambda: _addresses(heron) == ["10.0.0.2:8080"], timeout=10)
            lists = sum("watch" not in r for r in k8s.requests)
            k8s.garble()  # not JSON: logged, relisted after a backoff, targets kept meanwhile
            await wait_for(lambda: sum("watch" not in r for r in k8s.requests) > lists, timeout=10)
            assert _addresses(heron) == ["10.0.0.2:8080"]
            assert all("labelSelector=app%3Dweb" in r for r in k8s.requests)
            assert any("watch=1" in r and "allowWatchBookmarks=true" in r for r in k8s.requests)
            assert set(k8s.auth) == {"Bearer tok-1"} and not k8s.unknown
            events = heron.metrics.registry.get_sample_value
            assert events("heron_sd_kubernetes_events_total", {"role": "pod", "event": "add"}) == 1
            assert events("heron_sd_kubernetes_events_total", {"role": "pod", "event": "delete"}) == 1
            assert events("heron_sd_kubernetes_events_total", {"role": "pod", "event": "failure"}) == 1  # garbled
        finally:
            await heron.stop()


async def test_api_server_down_at_start_then_up(tmp_path: Path) -> None:
    port = free_port()
    heron = await start_heron(tmp_path, [_job(f"http://127.0.0.1:{port}", namespaces={"names": ["default"]})])
    try:
        manager: Any = next(s for s in heron.services if s.name == "scrape")
        await asyncio.sleep(1.0)
        assert _addresses(heron) == []
        [(_, [disc])] = manager.k8s.values()
        assert "ConnectError" in disc.informers[0].error
        assert (heron.metrics.registry.get_sample_value("heron_sd_kubernetes_events_total",
                                                        {"role": "pod", "event": "failure"}) or 0) >= 2  # retried
        with FakeKubernetes(port=port) as k8s:
            k8s.fail_lists = 1  # the first answer is a 500: retried too
            k8s.put("pods", pod("a", ip="10.0.0.1"))
            await wait_for(lambda: _addresses(heron) == ["10.0.0.1:8080"], timeout=15)
            assert all(r.startswith("/api/v1/namespaces/default/pods") for r in k8s.requests)
            # The reload with the same config keeps the watchers; another config replaces them.
            await manager.apply(manager._configs)
            assert manager.k8s["k"][1] == [disc]
            # A reload to an API server that does not answer keeps the last targets meanwhile.
            elsewhere = f"http://127.0.0.1:{free_port()}"
            await manager.apply([dataclasses.replace(c, kubernetes_sd=(
                dataclasses.replace(c.kubernetes_sd[0], api_server=elsewhere),)) for c in manager._configs])
            assert manager.k8s["k"][1] != [disc] and _addresses(heron) == ["10.0.0.1:8080"]
        transport = httpx.ASGITransport(app=heron.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://h",
                                     headers={"Authorization": "Bearer test-admin-token"}) as client:
            r = await client.get("/api/v1/targets")
        assert r.status_code == 200
        [t] = r.json()["data"]["activeTargets"]
        assert t["discoveredLabels"][M + "pod_name"] == "a" and t["labels"]["instance"] == "10.0.0.1:8080"
    finally:
        await heron.stop()


async def test_kubeconfig_current_context(tmp_path: Path) -> None:
    key, cert = _cert(tmp_path)
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "token").write_text("kc-token\n")
    with FakeKubernetes(tls=(key, cert)) as k8s:
        k8s.put("nodes", node("n1", addresses=[("InternalIP", "10.0.0.5")]))
        kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
                      "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:1"}},
                                   {"name": "c1", "cluster": {"server": k8s.url, "certificate-authority-data":
                                                              base64.b64encode(cert.read_bytes()).decode()}}],
                      "users": [{"name": "u1", "user": {"tokenFile": "token"}},
                                {"name": "robot", "user": {"exec": {"command": "aws"}}}],
                      "contexts": [{"name": "prod", "context": {"cluster": "c1", "user": "u1", "namespace": "x"}},
                                   {"name": "plugin", "context": {"cluster": "c1", "user": "robot"}}]}
        (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kubeconfig))
        heron = await start_heron(tmp_path, [{"job_name": "k", "scrape_interval": "1m", "kubernetes_sd_configs": [
            {"role": "node", "kubeconfig_file": str(tmp_path / "kube" / "config")}]}])
        try:
            await wait_for(lambda: _addresses(heron) == ["n1"], timeout=10)
            assert set(k8s.auth) == {"Bearer kc-token"}
            assert all(r.startswith("/api/v1/nodes?") for r in k8s.requests)  # context namespace unused
        finally:
            await heron.stop()
    kubeconfig["current-context"] = "plugin"
    (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kubeconfig))
    with pytest.raises(ValueError, match="'exec' plugins are not supported"):
        load_kubeconfig(str(tmp_path / "kube" / "config"))
    # Client certificates inline (written to a private temporary file for the ssl module) or by path.
    b64 = {k: base64.b64encode(p.read_bytes()).decode() for k, p in (("cert", cert), ("key", key))}
    kubeconfig["users"].append({"name": "tls", "user": {"client-certificate-data": b64["cert"],
                                                        "client-key-data": b64["key"]}})
    kubeconfig["users"].append({"name": "tls-files", "user": {"client-certificate": str(cert), "client-key": str(key)}})
    for user in ("tls", "tls-files"):
        kubeconfig["contexts"].append({"name": user, "context": {"cluster": "c1", "user": user}})
        kubeconfig["current-context"] = user
        (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kubeconfig))
        assert isinstance(load_kubeconfig(str(tmp_path / "kube" / "config")).verify, ssl.SSLContext)
    other_key, _ = _cert(tmp_path / "kube")
    kubeconfig["users"][-2]["user"]["client-key-data"] = base64.b64encode(other_key.read_bytes()).decode()
    kubeconfig["current-context"] = "tls"
    (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kubeconfig))
    with pytest.raises(ssl.SSLError):  # the key does not match the certificate
        load_kubeconfig(str(tmp_path / "kube" / "config"))
    kubeconfig["current-context"] = "nope"
    (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kubeconfig))
    with pytest.raises(ValueError, match="no context named 'nope'"):
        load_kubeconfig(str(tmp_path / "kube" / "config"))


# --- the seed's pod job, end to end, in-cluster --------------------------------------------------

SEED_JOB = """\
scrape_configs:
  - job_name: 'kubernetes-pods'
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: true
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        target_label: __metrics_path__
        regex: (.+)
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\\d+)?;(\\d+)
        replacement: $1:$2
        target_label: __address__
      - action: labelmap
        regex: __meta_kubernetes_pod_label_(.+)
      - source_labels: [__meta_kubernetes_namespace]
        action: replace
        target_label: kubernetes_namespace
      - source_labels: [__meta_kubernetes_pod_name]
        action: replace
        target_label: kubernetes_pod_name
"""


async def test_kubeconfig_tls_server_name(tmp_path: Path) -> None:
    """A cluster's `tls-server-name` is the name sent as SNI and checked against the API server's
    certificate: a certificate for `kube.test` only, served on 127.0.0.1, is trusted with it (and
    a client that checks the URL's host refuses it)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=kube.test", "-addext", "subjectAltName=DNS:kube.test"],
                   check=True, capture_output=True)
    (tmp_path / "kube").mkdir()
    with FakeKubernetes(tls=(key, cert)) as k8s:
        k8s.put("nodes", node("n1", addresses=[("InternalIP", "10.0.0.7")]))
        kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                      "clusters": [{"name": "c1", "cluster": {"server": k8s.url, "tls-server-name": "kube.test",
                                                              "certificate-authority": str(cert)}}],
                      "users": [{"name": "u1", "user": {"token": "t"}}],
                      "contexts": [{"name": "c", "context": {"cluster": "c1", "user": "u1"}}]}
        (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kubeconfig))
        kc = load_kubeconfig(str(tmp_path / "kube" / "config"))
        assert kc.tls_server_name == "kube.test"
        async with httpx.AsyncClient(verify=kc.verify) as plain:
            with pytest.raises(httpx.ConnectError, match=r"certificate|hostname|IP address"):
                await plain.get(k8s.url + "/api/v1/nodes")
        heron = await start_heron(tmp_path, [{"job_name": "k", "scrape_interval": "1m", "kubernetes_sd_configs": [
            {"role": "node", "kubeconfig_file": str(tmp_path / "kube" / "config")}]}])
        try:
            await wait_for(lambda: _addresses(heron) == ["n1"], timeout=10)
            assert set(k8s.auth) == {"Bearer t"}
        finally:
            await heron.stop()


def _cert(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


def _app(value: float) -> SwappableApp:
    reg = CollectorRegistry()
    Counter("orders", "Orders.", registry=reg).inc(value)
    Gauge("queue_depth", "Depth.", registry=reg).set(value * 2)
    return SwappableApp(reg)


async def test_seed_pod_job_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, cert = _cert(tmp_path)
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    (sa / "ca.crt").write_bytes(cert.read_bytes())
    (sa / "namespace").write_text("shop\n")
    monkeypatch.setattr(kubernetes_sd, "SA_DIR", str(sa))
    jobs = yaml.safe_load(SEED_JOB)["scrape_configs"]
    jobs.append({"job_name": "own", "scrape_interval": "1m", "kubernetes_sd_configs": [
        {"role": "pod", "namespaces": {"own_namespace": True}}]})
    with FakeKubernetes(tls=(key, cert)) as k8s, serve_wsgi(_app(3)) as one, serve_wsgi(_app(5)) as two:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(k8s.port))
        ann = {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics"}
        k8s.put("pods", pod("orders-1", ip="127.0.0.1", labels={"app": "orders", "tier": "api"},
                            annotations={**ann, "prometheus.io/port": one.split(":")[1]}))
        k8s.put("pods", pod("orders-2", ip="127.0.0.1", namespace="shop", labels={"app": "orders"},
                            annotations={**ann, "prometheus.io/port": two.split(":")[1]}))
        k8s.put("pods", pod("quiet", ip="127.0.0.1", labels={"app": "quiet"}))  # not annotated: dropped
        heron = await start_heron(tmp_path, jobs, **{"global": {"scrape_interval": "1s"}})
        try:
            async def both_scraped() -> Any:
                rows = [r for r in await samples(heron) if r["metric"] == "orders_total"]
                got = {r["labels"]["kubernetes_pod_name"]: r for r in rows}
                return got if len(got) == 2 else None
            got = await wait_for(both_scraped, timeout=20)
            assert got["orders-1"]["value"] == 3.0 and got["orders-2"]["value"] == 5.0
            assert got["orders-1"]["labels"] == {"__name__": "orders_total", "job": "kubernetes-pods", "instance": one,
                                                 "app": "orders",
                                                 "tier": "api", "kubernetes_namespace": "default",
                                                 "kubernetes_pod_name": "orders-1"}
            assert got["orders-2"]["labels"]["kubernetes_namespace"] == "shop"
            assert set(k8s.auth) == {"Bearer sa-token"}
            assert any(r.startswith("/api/v1/pods?") for r in k8s.requests)  # no namespaces: every namespace
            assert any(r.startswith("/api/v1/namespaces/shop/pods?") for r in k8s.requests)  # own_namespace
            manager: Any = next(s for s in heron.services if s.name == "scrape")
            assert [lp.target.labels["instance"] for c, lp in manager.targets() if c.job_name == "own"] == \
                ["127.0.0.1:8080"]

            def last(pod_name: str, metric: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
                mine = [r for r in rows if r["metric"] == metric and r["labels"].get("kubernetes_pod_name") == pod_name]
                return mine[-1] if mine else None

            # DELETED: its series go stale. MODIFIED to scrape=false: it is dropped and goes stale too.
            k8s.delete("pods", "orders-2", "shop")
            k8s.put("pods", pod("orders-1", ip="127.0.0.1", labels={"app": "orders", "tier": "api"},
                                annotations={**ann, "prometheus.io/scrape": "false",
                                             "prometheus.io/port": one.split(":")[1]}))

            async def both_stale() -> bool:
                rows = await samples(heron)
                ends = [last(p, m, rows) for p in ("orders-1", "orders-2") for m in ("orders_total", "up")]
                return all(r is not None and r["bits"] == STALE_NAN_BITS for r in ends)
            await wait_for(both_stale, timeout=20)
            assert _job_targets(heron) == []
            n = len(await samples(heron))
            await asyncio.sleep(1.5)
            assert len(await samples(heron)) == n  # nothing scraped any more
        finally:
            await heron.stop()


def _job_targets(heron: Any) -> list[str]:
    manager: Any = next(s for s in heron.services if s.name == "scrape")
    return [lp.target.url for c, lp in manager.targets() if c.job_name == "kubernetes-pods"]
