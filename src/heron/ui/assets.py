"""Static assets under a content-hashed prefix: `/assets/<version>/js/dashboard.js`.

`version` is a hash of every file under `static/`, so the browser may keep them for a year
(`immutable`): a Heron with other assets has another prefix, and the pages name it. A module's
relative imports (`./lib.js`) resolve under the same prefix, so one version covers the module
graph. The files are read once at start (the tree is ~0.7 MB) and served from memory, compressed
with brotli or gzip for the clients that accept them, once per file on its first request (the
PromQL editor bundle goes from 460 kB to ~130 kB). A request for another version (a page rendered by a Heron before a
restart) still gets the current file, with a short cache.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

import cramjam
from starlette.requests import Request
from starlette.responses import Response

COMPRESSIBLE = (".js", ".css", ".svg", ".json", ".html", ".txt", ".md", ".map")
MIN_COMPRESS = 1024
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60"


@dataclass
class Asset:
    body: bytes
    media_type: str
    compress: bool
    etag: str
    encoded: dict[str, bytes] = field(default_factory=dict)

    def encode(self, encoding: str) -> bytes:
        out = self.encoded.get(encoding)
        if out is None:
            out = self.encoded[encoding] = gzip.compress(self.body, 6, mtime=0) if encoding == "gzip" \
                else bytes(cramjam.brotli.compress(self.body, level=6))
        return out


class Assets:
    def __init__(self, root: Path, prefix: str = "/assets") -> None:
        self.files: dict[str, Asset] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(rel.encode() + b"\0" + hashlib.sha256(body).digest())
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith(("javascript", "json", "svg+xml")):
                media += "; charset=utf-8"
            self.files[rel] = Asset(body, media, len(body) >= MIN_COMPRESS and rel.endswith(COMPRESSIBLE),
                                    '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        self.version = digest.hexdigest()[:12]
        self.prefix = f"{prefix}/{self.version}"

    def url(self, rel: str) -> str:
        return f"{self.prefix}/{rel.lstrip('/')}"

    async def endpoint(self, request: Request) -> Response:
        asset = self.files.get(request.path_params["path"])
        if asset is None:
            return Response("not found", 404, media_type="text/plain")
        headers = {"Cache-Control": IMMUTABLE if request.path_params["version"] == self.version else SHORT,
                   "ETag": asset.etag, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        accepted = {e.split(";")[0].strip() for e in request.headers.get("accept-encoding", "").split(",")}
        body = asset.body
        encoding = next((e for e in ("br", "gzip") if e in accepted), None) if asset.compress else None
        if encoding:
            body, headers["Content-Encoding"] = asset.encode(encoding), encoding
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=asset.media_type)
        return Response(body, headers=headers, media_type=asset.media_type)
