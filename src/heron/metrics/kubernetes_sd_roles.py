"""Kubernetes objects (API JSON) to targets, with Prometheus' meta labels for each role.

Pure functions over the objects the watchers hold, following Prometheus 2.42's
discovery/kubernetes/{pod,service,endpoints,endpointslice,ingress,node}.go: the same label names,
the same values (`lv` of missing fields is ""), one target per container port (pod), service port
(service), endpoint address and port (endpoints, endpointslice), rule host and path (ingress) or
node. Each target is `(address, labels)` where labels
already merges the group's labels (the target's own win, as in Prometheus' merge).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

Obj = Mapping[str, Any]
Store = Mapping[tuple[str, str], Obj]  # (namespace, name) -> object
TargetLabels = tuple[str, dict[str, str]]

META = "__meta_kubernetes_"
NAMESPACE = META + "namespace"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
DEFAULT_NODE_ADDRESS_TYPES = ("InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP",
                              "Hostname")


def sanitize(name: str) -> str:
    """prometheus/util/strutil.SanitizeLabelName: every invalid character becomes '_'."""
    return _INVALID.sub("_", name)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _object_labels(obj: Obj, prefix: str) -> dict[str, str]:
    """label_/labelpresent_/annotation_/annotationpresent_ of an object, names sanitised."""
    meta = _meta(obj)
    out: dict[str, str] = {}
    for kind, values in (("label", meta.get("labels")), ("annotation", meta.get("annotations"))):
        for k, v in (values or {}).items():
            ln = sanitize(k)
            out[f"{prefix}{kind}_{ln}"] = str(v)
            out[f"{prefix}{kind}present_{ln}"] = "true"
    return out


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- pod ---------------------------------------------------------------------------------------

def pod_labels(pod: Obj) -> dict[str, str]:
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    ready = "unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = str(cond.get("status", "")).lower()
            break
    ls = {META + "pod_name": meta.get("name", ""), META + "pod_ip": status.get("podIP", ""),
          META + "pod_ready": ready, META + "pod_phase": status.get("phase", ""),
          META + "pod_node_name": spec.get("nodeName", ""), META + "pod_host_ip": status.get("hostIP", ""),
          META + "pod_uid": meta.get("uid", "")}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            if ref.get("kind"):
                ls[META + "pod_controller_kind"] = ref["kind"]
            if ref.get("name"):
                ls[META + "pod_controller_name"] = ref["name"]
            break
    ls.update(_object_labels(pod, META + "pod_"))
    return ls


def node_meta(node: Obj | None, name: str) -> dict[str, str]:
    """attach_metadata.node: the node's name, labels and their presence (nothing for an unknown node)."""
    if node is None:
        return {}
    out = {META + "node_name": name}
    for k, v in ((_meta(node).get("labels")) or {}).items():
        ln = sanitize(k)
        out[f"{META}node_label_{ln}"] = str(v)
        out[f"{META}node_labelpresent_{ln}"] = "true"
    return out


def pod_targets(pod: Obj, nodes: Store | None = None) -> list[TargetLabels]:
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    ip = status.get("podIP") or ""
    if not ip:  # starting or evicted: an empty group
        return []
    group = pod_labels(pod)
    group[NAMESPACE] = _meta(pod).get("namespace", "")
    if nodes is not None and spec.get("nodeName"):
        group.update(node_meta(nodes.get(("", spec["nodeName"])), spec["nodeName"]))
    out: list[TargetLabels] = []
    containers = [(c, "false") for c in spec.get("containers") or []] + \
                 [(c, "true") for c in spec.get("initContainers") or []]
    ids = {(s.get("name"), key): s.get("containerID", "")
           for key in ("containerStatuses", "initContainerStatuses") for s in status.get(key) or []}
    for c, init in containers:
        cid = ids.get((c.get("name"), "initContainerStatuses" if init == "true" else "containerStatuses"), "")
        base = {META + "pod_container_name": c.get("name", ""), META + "pod_container_id": cid,
                META + "pod_container_image": c.get("image", ""), META + "pod_container_init": init}
        if not c.get("ports"):
            out.append((ip, {**group, "__address__": ip, **base}))
            continue
        for port in c["ports"]:
            number = str(port.get("containerPort", 0))
            addr = _join_host_port(ip, number)
            out.append((addr, {**group, "__address__": addr, **base,
                               META + "pod_container_port_number": number,
                               META + "pod_container_port_name": port.get("name", ""),
                               META + "pod_container_port_protocol": port.get("protocol", "")}))
    return out


# --- service -----------------------------------------------------------------------------------

def service_labels(svc: Obj) -> dict[str, str]:
    meta = _meta(svc)
    ls = {META + "service_name": meta.get("name", ""), NAMESPACE: meta.get("namespace", "")}
    ls.update(_object_labels(svc, META + "service_"))
    return ls


def service_targets(svc: Obj) -> list[TargetLabels]:
    meta, spec = _meta(svc), svc.get("spec") or {}
    group = service_labels(svc)
    out: list[TargetLabels] = []
    for port in spec.get("ports") or []:
        number = str(port.get("port", 0))
        addr = _join_host_port(f"{meta.get('name', '')}.{meta.get('namespace', '')}.svc", number)
        t = {**group, "__address__": addr, META + "service_port_name": port.get("name", ""),
             META + "service_port_number": number, META + "service_port_protocol": port.get("protocol", ""),
             META + "service_type": spec.get("type", "")}
        if spec.get("type") == "ExternalName":
            t[META + "service_external_name"] = spec.get("externalName", "")
        else:
            t[META + "service_cluster_ip"] = spec.get("clusterIP", "")
        out.append((addr, t))
    return out


# --- endpoints ---------------------------------------------------------------------------------

def endpoints_targets(eps: Obj, services: Store, pods: Store, nodes: Store | None = None) -> list[TargetLabels]:
    meta = _meta(eps)
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    group = {NAMESPACE: ns, META + "endpoints_name": name}
    svc = services.get((ns, name))
    if svc is not None:
        group.update(service_labels(svc))
    for k, v in (meta.get("labels") or {}).items():
        ln = sanitize(k)
        group[f"{META}endpoints_label_{ln}"] = str(v)
        group[f"{META}endpoints_labelpresent_{ln}"] = "true"
    out: list[TargetLabels] = []
    seen: dict[tuple[str, str], tuple[Obj, list[int]]] = {}

    def add(addr: Obj, port: Obj, ready: str) -> None:
        a = _join_host_port(addr.get("ip", ""), port.get("port", 0))
        t = {"__address__": a, META + "endpoint_port_name": port.get("name", ""),
             META + "endpoint_port_protocol": port.get("protocol", ""), META + "endpoint_ready": ready}
        ref = addr.get("targetRef")
        if ref:
            t[META + "endpoint_address_target_kind"] = ref.get("kind", "")
            t[META + "endpoint_address_target_name"] = ref.get("name", "")
        if addr.get("nodeName") is not None:
            t[META + "endpoint_node_name"] = addr["nodeName"]
        if addr.get("hostname"):
            t[META + "endpoint_hostname"] = addr["hostname"]
        if nodes is not None and addr.get("nodeName") is not None:
            t.update(node_meta(nodes.get(("", addr["nodeName"])), addr["nodeName"]))
        pod = pods.get((ref.get("namespace", ""), ref.get("name", ""))) \
            if ref and ref.get("kind") == "Pod" else None
        if pod is None:
            out.append((a, {**group, **t}))
            return
        entry = seen.setdefault((_meta(pod).get("namespace", ""), _meta(pod).get("name", "")), (pod, []))
        t.update(pod_labels(pod))
        for c in (pod.get("spec") or {}).get("containers") or []:
            hit = next((cp for cp in c.get("ports") or [] if cp.get("containerPort") == port.get("port")), None)
            if hit is not None:
                t[META + "pod_container_name"] = c.get("name", "")
                t[META + "pod_container_image"] = c.get("image", "")
                t[META + "pod_container_port_name"] = hit.get("name", "")
                t[META + "pod_container_port_number"] = str(port.get("port", 0))
                t[META + "pod_container_port_protocol"] = port.get("protocol", "")
                break
        entry[1].append(port.get("port", 0))
        out.append((a, {**group, **t}))

    for subset in eps.get("subsets") or []:
        for port in subset.get("ports") or []:
            for addr in subset.get("addresses") or []:
                add(addr, port, "true")
            for addr in subset.get("notReadyAddresses") or []:
                add(addr, port, "false")
    # Container ports of seen pods not covered by an endpoint port get their own targets.
    for pod, ports in seen.values():
        for c in (pod.get("spec") or {}).get("containers") or []:
            for cp in c.get("ports") or []:
                if cp.get("containerPort") in ports:
                    continue
                number = str(cp.get("containerPort", 0))
                a = _join_host_port((pod.get("status") or {}).get("podIP", ""), number)
                out.append((a, {**group, **pod_labels(pod), "__address__": a,
                                 META + "pod_container_name": c.get("name", ""),
                                 META + "pod_container_image": c.get("image", ""),
                                 META + "pod_container_port_name": cp.get("name", ""),
                                 META + "pod_container_port_number": number,
                                 META + "pod_container_port_protocol": cp.get("protocol", "")}))
    return out


# --- endpointslice (discovery.k8s.io/v1) ------------------------------------------------------

def endpointslice_targets(eps: Obj, services: Store, pods: Store, nodes: Store | None = None) -> list[TargetLabels]:
    meta = _meta(eps)
    ns = meta.get("namespace", "")
    group = {NAMESPACE: ns, META + "endpointslice_name": meta.get("name", ""),
             META + "endpointslice_address_type": eps.get("addressType", "")}
    svc_name = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    if svc_name is not None and (ns, svc_name) in services:
        group.update(service_labels(services[(ns, svc_name)]))
    out: list[TargetLabels] = []
    seen: dict[tuple[str, str], tuple[Obj, list[Any]]] = {}

    def add(addr: str, ep: Obj, port: Obj) -> None:
        a = _join_host_port(addr, port["port"]) if port.get("port") is not None else addr
        t = {"__address__": a}
        for key, label in (("name", "port_name"), ("protocol", "port_protocol"), ("appProtocol", "port_app_protocol")):
            if port.get(key) is not None:
                t[META + "endpointslice_" + label] = str(port[key])
        if port.get("port") is not None:
            t[META + "endpointslice_port"] = str(port["port"])
        ready = (ep.get("conditions") or {}).get("ready")
        if ready is not None:
            t[META + "endpointslice_endpoint_conditions_ready"] = "true" if ready else "false"
        if ep.get("hostname") is not None:
            t[META + "endpointslice_endpoint_hostname"] = ep["hostname"]
        ref = ep.get("targetRef")
        if ref:
            t[META + "endpointslice_address_target_kind"] = ref.get("kind", "")
            t[META + "endpointslice_address_target_name"] = ref.get("name", "")
        for k, v in (ep.get("deprecatedTopology") or {}).items():
            ln = sanitize(k)
            t[f"{META}endpointslice_endpoint_topology_{ln}"] = str(v)
            t[f"{META}endpointslice_endpoint_topology_present_{ln}"] = "true"
        if nodes is not None and ep.get("nodeName") is not None:
            t.update(node_meta(nodes.get(("", ep["nodeName"])), ep["nodeName"]))
        pod = pods.get((ref.get("namespace", ""), ref.get("name", ""))) \
            if ref and ref.get("kind") == "Pod" else None
        if pod is None:
            out.append((a, {**group, **t}))
            return
        entry = seen.setdefault((_meta(pod).get("namespace", ""), _meta(pod).get("name", "")), (pod, []))
        t.update(pod_labels(pod))
        for c in (pod.get("spec") or {}).get("containers") or []:
            hit = next((cp for cp in c.get("ports") or [] if port.get("port") is not None
                        and cp.get("containerPort") == port.get("port")), None)
            if hit is not None:
                t[META + "pod_container_name"] = c.get("name", "")
                t[META + "pod_container_image"] = c.get("image", "")
                t[META + "pod_container_port_name"] = hit.get("name", "")
                t[META + "pod_container_port_number"] = str(port["port"])
                t[META + "pod_container_port_protocol"] = hit.get("protocol", "")
                break
        entry[1].append(port.get("port"))
        out.append((a, {**group, **t}))

    for ep in eps.get("endpoints") or []:
        for port in eps.get("ports") or []:
            for addr in ep.get("addresses") or []:
                add(addr, ep, port)
    for pod, ports in seen.values():
        ip = (pod.get("status") or {}).get("podIP", "")
        if not ip:
            continue
        for c in (pod.get("spec") or {}).get("containers") or []:
            for cp in c.get("ports") or []:
                if cp.get("containerPort") in ports:
                    continue
                number = str(cp.get("containerPort", 0))
                a = _join_host_port(ip, number)
                out.append((a, {**group, **pod_labels(pod), "__address__": a,
                                 META + "pod_container_name": c.get("name", ""),
                                 META + "pod_container_image": c.get("image", ""),
                                 META + "pod_container_port_name": cp.get("name", ""),
                                 META + "pod_container_port_number": number,
                                 META + "pod_container_port_protocol": cp.get("protocol", "")}))
    return out


# --- ingress (networking.k8s.io/v1) ------------------------------------------------------------

def _host_matches(pattern: str, host: str) -> bool:
    """A TLS host pattern: equal, or `*.` matching exactly one leading label."""
    if pattern == host:
        return True
    pp, hp = pattern.split("."), host.split(".")
    return pp[0] == "*" and len(pp) == len(hp) and pp[1:] == hp[1:]


def ingress_targets(ing: Obj) -> list[TargetLabels]:
    meta, spec = _meta(ing), ing.get("spec") or {}
    group = {META + "ingress_name": meta.get("name", ""), NAMESPACE: meta.get("namespace", "")}
    if spec.get("ingressClassName") is not None:
        group[META + "ingress_class_name"] = spec["ingressClassName"]
    group.update(_object_labels(ing, META + "ingress_"))
    tls_hosts = [h for t in spec.get("tls") or [] for h in t.get("hosts") or []]
    out: list[TargetLabels] = []
    for rule in spec.get("rules") or []:
        host = rule.get("host", "")
        http = rule.get("http")
        paths = [p.get("path") or "/" for p in http.get("paths") or []] if http is not None else ["/"]
        scheme = "https" if any(_host_matches(p, host) for p in tls_hosts) else "http"
        for path in paths:
            out.append((host, {**group, "__address__": host, META + "ingress_scheme": scheme,
                               META + "ingress_host": host, META + "ingress_path": path}))
    return out


# --- node --------------------------------------------------------------------------------------

def node_targets(node: Obj, preferred: Iterable[str] = DEFAULT_NODE_ADDRESS_TYPES) -> list[TargetLabels]:
    meta, status, spec = _meta(node), node.get("status") or {}, node.get("spec") or {}
    by_type: dict[str, list[str]] = {}
    for a in status.get("addresses") or []:
        by_type.setdefault(a.get("type", ""), []).append(a.get("address", ""))
    host = next((by_type[t][0] for t in preferred if by_type.get(t)), None)
    if host is None:  # Prometheus logs "No node address found" and sends no group
        return []
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 0)
    addr = _join_host_port(host, port)
    ls = {META + "node_name": meta.get("name", ""), META + "node_provider_id": spec.get("providerID", "")}
    ls.update(_object_labels(node, META + "node_"))
    ls["__address__"] = addr
    ls["instance"] = meta.get("name", "")
    for ty, addrs in by_type.items():
        ls[sanitize(META + "node_address_" + ty)] = addrs[0]
    return [(addr, ls)]
