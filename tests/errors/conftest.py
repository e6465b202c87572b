"""A real `heron up` with one project, shared by the SDK, sentry-cli and Node tests."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from heron.testing import HeronProcess


@pytest.fixture(scope="package")
def heron_proc() -> Iterator[HeronProcess]:
    with HeronProcess() as proc:
        yield proc


def create_project(proc: HeronProcess, name: str) -> str:
    """`heron project create NAME` against the running instance's data dir; returns the DSN."""
    out = subprocess.run([sys.executable, "-m", "heron", "project", "create", name, "--config",
                          str(proc.data_dir / "heron.yml")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="package")
def sentry_browser_bundle() -> Iterator[Path]:
    """A folder holding `@sentry/browser` 8 bundled into one `sentry.js` (npm + esbuild), as a web
    app's build step would ship it; tests add their pages next to it."""
    npm = shutil.which("npm")
    if not npm:
        pytest.fail("npm is missing: scripts/test installs it")
    d = Path(tempfile.mkdtemp(prefix="heron-sentry-browser-"))
    (d / "package.json").write_text(json.dumps({"name": "heron-sentry-browser-test", "private": True}))
    out = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                          "@sentry/browser@8", "esbuild@0.24"], cwd=d, capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        pytest.fail(f"npm install @sentry/browser failed (registry unreachable?):\n{out.stderr[-2000:]}")
    (d / "entry.js").write_text('import * as Sentry from "@sentry/browser"; window.Sentry = Sentry;\n')
    out = subprocess.run([str(d / "node_modules/.bin/esbuild"), "entry.js", "--bundle", "--format=iife",
                          "--outfile=site/sentry.js"], cwd=d, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    yield d / "site"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def browser_site(sentry_browser_bundle: Path) -> Iterator[str]:
    """The pages' own origin: a static server on another port than Heron's (so requests are CORS)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass
    handler = functools.partial(Quiet, directory=str(sentry_browser_bundle))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
