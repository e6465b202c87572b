"""The JavaScript SDK (`@sentry/node`, installed with npm into a temporary folder) against `heron up`."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heron.testing import HeronProcess

from .conftest import create_project
from .helpers import wait_until

NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = [pytest.mark.peer, pytest.mark.skipif(not (NODE and NPM), reason="node/npm not installed")]

SCRIPT = r"""
const Sentry = require("@sentry/node");
Sentry.init({ dsn: process.env.DSN, release: "node-app@1.0.0", environment: "production",
              tracesSampleRate: 1.0 });
Sentry.setUser({ id: "n1", email: "n1@example.com" });
Sentry.addBreadcrumb({ category: "db", message: "connect", data: { password: "pw-123456" } });
function parseConfig() { throw new TypeError("config.port is undefined"); }
function start() {
  try { parseConfig(); } catch (e) { throw new Error("server failed to start", { cause: e }); }
}
for (let i = 0; i < 2; i++) { try { start(); } catch (e) { Sentry.captureException(e); } }
Sentry.captureMessage("disk usage at 91%", "warning");
Sentry.captureMessage("disk usage at 95%", "warning");
Sentry.withScope((scope) => { scope.setFingerprint(["payment-gateway"]); Sentry.captureException(new Error("gw A")); });
Sentry.withScope((scope) => { scope.setFingerprint(["payment-gateway"]); Sentry.captureException(new RangeError("gw B")); });
Sentry.startSpan({ name: "nightly-export", op: "task" }, () => {
  Sentry.startSpan({ name: "SELECT rows", op: "db.query" }, () => { const t = Date.now(); while (Date.now() - t < 5) {} });
});
Sentry.captureCheckIn({ monitorSlug: "node-export", status: "ok", duration: 1.5 },
                      { schedule: { type: "crontab", value: "*/5 * * * *" }, checkinMargin: 2, maxRuntime: 5 });
Sentry.flush(10000).then((ok) => { console.log(JSON.stringify({ flushed: ok })); });
"""


@pytest.fixture(scope="module")
def node_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="heron-sentry-node-"))
    (d / "package.json").write_text(json.dumps({"name": "heron-sentry-test", "private": True}))
    out = subprocess.run([NPM or "npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "@sentry/node@8"],
                         cwd=d, capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        pytest.fail(f"npm install @sentry/node failed (registry unreachable?):\n{out.stderr[-2000:]}")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_node_sdk(heron_proc: HeronProcess, node_dir: Path) -> None:
    dsn = create_project(heron_proc, "node-app")
    (node_dir / "app.js").write_text(SCRIPT)
    out = subprocess.run([NODE or "node", "app.js"], cwd=node_dir, capture_output=True, text=True, timeout=60,
                         env={"DSN": dsn, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and '"flushed":true' in out.stdout, out.stderr
    with heron_proc.client() as c:
        def issues() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = c.get("/api/0/projects/heron/node-app/issues/", params={"sort": "freq"}).json()
            return got if sum(int(i["count"]) for i in got) >= 6 else []

        got = wait_until(issues)
        summary = sorted((i["title"], i["count"], i["level"]) for i in got)
        assert summary == [("Error: gw A", "2", "error"),
                           ("Error: server failed to start", "2", "error"),
                           ("disk usage at 91%", "2", "warning")], summary
        chained = next(i for i in got if i["title"] == "Error: server failed to start")
        assert chained["userCount"] == 1 and chained["firstRelease"] == {"version": "node-app@1.0.0"}
        ev = wait_until(lambda: c.get(f"/api/0/issues/{chained['id']}/events/latest/").json().get("entries"))
        ev = c.get(f"/api/0/issues/{chained['id']}/events/latest/").json()
        entries = {e["type"]: e["data"] for e in ev["entries"]}
        assert [v["type"] for v in entries["exception"]["values"]] == ["TypeError", "Error"]
        frames = entries["exception"]["values"][0]["stacktrace"]["frames"]
        assert any(f["function"] == "parseConfig" and f["in_app"] for f in frames)
        crumb = next(b for b in entries["breadcrumbs"]["values"] if b.get("category") == "db")
        assert crumb["data"] == {"password": "[Filtered]"}
        assert ev["platform"] == "node" and ev["sdk"]["name"] == "sentry.javascript.node"
        tx = wait_until(lambda: c.get("/api/0/projects/heron/node-app/transactions/").json())
        assert [(t["transaction"], t["count"], t["release"]) for t in tx] == [("nightly-export", 1, "node-app@1.0.0")]
        mons = {m["slug"]: m for m in c.get("/api/0/organizations/heron/monitors/").json()}
        assert mons["node-export"]["status"] == "ok"
        assert mons["node-export"]["config"]["schedule"] == "*/5 * * * *"
