"""`no_proxy` of a scrape job's HTTP client settings: which targets skip its `proxy_url`.

Prometheus hands `proxy_url` and `no_proxy` to Go's `httpproxy.Config`, so its rules apply:
a comma-separated list of IPs, CIDRs and domain names, each optionally with a port; `*` matches
every host; `example.com` matches it and its subdomains, `.example.com` and `*.example.com`
only the subdomains; `localhost` and loopback addresses never go through the proxy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class NoProxy:
    everything: bool
    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]  # (net, port or "")
    domains: tuple[tuple[str, str, bool], ...]  # (".suffix", port or "", also the bare domain)

    @classmethod
    def parse(cls, text: str) -> NoProxy:
        networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        domains: list[tuple[str, str, bool]] = []
        for raw in text.split(","):
            p = raw.strip().lower()
            if not p:
                continue
            if p == "*":
                return cls(True, (), ())
            if "/" in p:
                try:
                    networks.append((ipaddress.ip_network(p, strict=False), ""))
                except ValueError:
                    pass  # not a CIDR: Go goes on to read it as a host
                else:
                    continue
            host, port = _split(p)
            if not host:
                continue
            try:
                networks.append((ipaddress.ip_network(host), port))
                continue
            except ValueError:
                pass
            if host.startswith("*."):
                host = host[1:]
            bare = not host.startswith(".")
            domains.append((host if not bare else "." + host, port, bare))
        return cls(False, tuple(networks), tuple(domains))

    def bypasses(self, host: str, port: str) -> bool:
        """Whether a request to host:port goes direct, not through the proxy."""
        host = host.strip().lower().strip("[]")
        if host == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and ip.is_loopback:
            return True
        if self.everything:
            return True
        if ip is not None:
            for net, p in self.networks:
                if ip in net and (not p or p == port):
                    return True
        for suffix, p, bare in self.domains:
            if (host.endswith(suffix) or (bare and host == suffix[1:])) and (not p or p == port):
                return True
        return False


def _split(p: str) -> tuple[str, str]:
    """host, port of `host:port`, `[v6]:port`, or a bare host or IPv6 address (port "")."""
    if p.startswith("["):
        end = p.find("]")
        if end > 0:
            rest = p[end + 1:]
            return p[1:end], rest[1:] if rest.startswith(":") else ""
    if p.count(":") == 1:
        host, _, port = p.partition(":")
        return host, port
    return p, ""
