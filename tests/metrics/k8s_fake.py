"""A fake Kubernetes API server on loopback: real HTTP, real Kubernetes JSON objects.

Serves list (`GET /api/v1/[namespaces/<ns>/]<resource>`, `/apis/<group>/v1/...` for
endpointslices and ingresses, with resourceVersion in the list metadata) and watch (`?watch=1|true`:
one JSON event per line, kept open) for pods, services, endpoints, endpointslices, ingresses and
nodes. `put`/`delete` change an object and push ADDED/MODIFIED/DELETED to every
open watch, so Heron and a real Prometheus (client-go) see the same cluster. Requests are kept
in `requests` and unknown paths in `unknown`, to see what a client asks for.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from heron.testing import free_port

KINDS = {"pods": "Pod", "services": "Service", "endpoints": "Endpoints", "nodes": "Node",
         "endpointslices": "EndpointSlice", "ingresses": "Ingress"}
API_VERSIONS = {"endpointslices": "discovery.k8s.io/v1", "ingresses": "networking.k8s.io/v1"}
_PATH = re.compile(r"^/(?:api/v1|apis/discovery\.k8s\.io/v1|apis/networking\.k8s\.io/v1)/"
                   r"(?:namespaces/([^/]+)/)?(pods|services|endpoints|nodes|endpointslices|ingresses)$")


class FakeKubernetes:
    def __init__(self, port: int | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.port = port or free_port()
        self.tls = tls  # (key, cert): serve https
        self.auth: list[str] = []  # Authorization headers seen
        # Every event with its resourceVersion: a watch from version N first gets what came after N,
        # as from a real API server (nothing is lost between a list and the watch that follows it).
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in KINDS}
        self.rv = 100
        self.lock = threading.Lock()
        self.watchers: list[tuple[str, str, str, queue.Queue[dict[str, Any] | None]]] = []
        self.requests: list[str] = []
        self.unknown: list[str] = []
        self.fail_lists = 0  # answer this many list requests with 500 first
        self.server: ThreadingHTTPServer | None = None
        self.closing = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # --- the cluster ---------------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        ns = "" if resource == "nodes" else meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{resource}-{ns}-{meta['name']}")
        obj["kind"], obj["apiVersion"] = KINDS[resource], API_VERSIONS.get(resource, "v1")
        with self.lock:
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            key = (ns, meta["name"])
            kind = "MODIFIED" if key in self.objects[resource] else "ADDED"
            self.objects[resource][key] = obj
            self._push(resource, ns, {"type": kind, "object": obj})

    def delete(self, resource: str, name: str, namespace: str = "default") -> None:
        ns = "" if resource == "nodes" else namespace
        with self.lock:
            obj = self.objects[resource].pop((ns, name))
            self.rv += 1
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
            self._push(resource, ns, {"type": "DELETED", "object": obj})

    def expire(self) -> None:
        """Every open watch gets `ERROR 410 Gone` (resourceVersion too old): clients must relist."""
        with self.lock:
            for _, _, _, q in self.watchers:
                q.put({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                   "reason": "Expired", "code": 410,
                                                   "message": "too old resource version"}})

    def garble(self) -> None:
        """Every open watch gets a line that is not JSON (a broken proxy): clients must recover."""
        with self.lock:
            for _, _, _, q in self.watchers:
                q.put({"raw": "{not json"})

    def _push(self, resource: str, ns: str, event: dict[str, Any]) -> None:
        self.history.append((self.rv, resource, ns, event))
        for res, wns, selector, q in self.watchers:
            # (a real API server sends DELETED when an object stops matching; not needed here)
            if res == resource and (not wns or wns == ns) and selected(event["object"], selector):
                q.put(event)

    # --- the server ----------------------------------------------------------------------------

    def __enter__(self) -> FakeKubernetes:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                fake.requests.append(self.path)
                fake.auth.append(self.headers.get("Authorization", ""))
                m = _PATH.match(parts.path)
                if parts.path == "/version":
                    self._json(200, {"major": "1", "minor": "26", "gitVersion": "v1.26.0"})
                    return
                if not m:
                    fake.unknown.append(self.path)
                    self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "message": f"the server could not find {parts.path}", "code": 404})
                    return
                ns, resource = m.group(1) or "", m.group(2)
                if q.get("watch") in ("1", "true"):
                    rv = q.get("resourceVersion", "")
                    self._watch(resource, ns, q.get("labelSelector", ""), int(rv) if rv.isdigit() else 0)
                    return
                if fake.fail_lists > 0:
                    fake.fail_lists -= 1
                    self._json(500, {"kind": "Status", "code": 500, "message": "etcd is sad"})
                    return
                with fake.lock:
                    items = [o for (ons, _), o in sorted(fake.objects[resource].items())
                             if (not ns or ons == ns) and selected(o, q.get("labelSelector", ""))]
                    rv = str(fake.rv)
                self._json(200, {"kind": KINDS[resource] + "List", "apiVersion": API_VERSIONS.get(resource, "v1"),
                                 "metadata": {"resourceVersion": rv}, "items": items})

            def _watch(self, resource: str, ns: str, selector: str, since: int) -> None:
                q: queue.Queue[dict[str, Any] | None] = queue.Queue()
                entry = (resource, ns, selector, q)
                with fake.lock:
                    if since:
                        for rv, res, ons, event in fake.history:
                            if rv > since and res == resource and (not ns or ns == ons) \
                                    and selected(event["object"], selector):
                                q.put(event)
                    fake.watchers.append(entry)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    while not fake.closing:
                        try:
                            event = q.get(timeout=0.2)
                        except queue.Empty:
                            continue
                        if event is None:
                            break
                        line = (event["raw"] if "raw" in event else json.dumps(event)).encode() + b"\n"
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                finally:
                    with fake.lock:
                        fake.watchers.remove(entry)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls[1], self.tls[0])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing = True
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def selected(obj: dict[str, Any], selector: str) -> bool:
    """Equality-based label selectors (`a=b,c!=d`), enough for the tests."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for req in filter(None, selector.split(",")):
        if "!=" in req:
            k, v = req.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        else:
            k, v = req.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
    return True


# --- real-looking objects ----------------------------------------------------------------------

def pod(name: str, ip: str = "127.0.0.1", namespace: str = "default", *, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, containers: list[dict[str, Any]] | None = None,
        init_containers: list[dict[str, Any]] | None = None, node: str = "node-1",
        ready: str = "True", phase: str = "Running") -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "containers": containers if containers is not None else
                            [{"name": "app", "image": "example/app:1.0",
                              "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}
    if init_containers:
        spec["initContainers"] = init_containers
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "annotations": annotations or {},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-rs",
                                              "uid": "rs-uid", "controller": True}]},
            "spec": spec,
            "status": {"phase": phase, "podIP": ip, "hostIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": ready}]}}


def service(name: str, namespace: str = "default", *, ports: list[dict[str, Any]] | None = None,
            labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
            type_: str = "ClusterIP", cluster_ip: str = "10.96.0.10", external_name: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "ports": ports or [{"name": "web", "port": 80, "protocol": "TCP",
                                                              "targetPort": 8080}]}
    if type_ == "ExternalName":
        spec["externalName"] = external_name
    else:
        spec["clusterIP"] = cluster_ip
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "annotations": annotations or {}}, "spec": spec}


def endpoints(name: str, namespace: str = "default", *, subsets: list[dict[str, Any]],
              labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "subsets": subsets}


def node(name: str, *, addresses: list[tuple[str, str]], labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None, kubelet_port: int = 10250,
         provider_id: str = "") -> dict[str, Any]:
    spec = {"providerID": provider_id} if provider_id else {}
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}, "spec": spec,
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}}


def endpointslice(name: str, service_name: str, namespace: str = "default", *, endpoints: list[dict[str, Any]],
                  ports: list[dict[str, Any]], address_type: str = "IPv4") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def ingress(name: str, namespace: str = "default", *, rules: list[dict[str, Any]], tls_hosts: list[str] | None = None,
            class_name: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": rules}
    if tls_hosts:
        spec["tls"] = [{"hosts": tls_hosts, "secretName": "tls"}]
    if class_name is not None:
        spec["ingressClassName"] = class_name
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": spec}
