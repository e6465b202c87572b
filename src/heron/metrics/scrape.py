"""One scrape loop per target: fetch, parse, label, limit, write, and mark what went stale.

Behaviour copied from Prometheus' scrape loop:
- the first scrape happens at `hash(target) mod interval`, so targets spread over the interval;
- samples get the scrape's start time unless `honor_timestamps` and the line has its own;
- target labels win over scraped ones (the scraped value moves to `exported_<name>`) unless
  `honor_labels`;
- a series present in the previous scrape and absent now gets a stale marker (STALE_NAN) at this
  scrape's time; a failed scrape (down, over sample_limit/label_limit) marks every series stale;
  series with explicit timestamps are never marked;
- `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
  `scrape_samples_post_metric_relabeling` and `scrape_series_added` are written every scrape;
- when a target goes away, its series are marked stale at the time its next scrape would have
  been, written two intervals later unless the target came back (a reload that keeps it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import numpy as np
import pyarrow as pa

from heron.exceptions import Backpressure, BadRequest, PipelineClosed
from heron.metrics.discovery import Target
from heron.metrics.exemplars import exemplar_table, parse_openmetrics
from heron.metrics.exposition import LabelCache, Parsed, parse
from heron.metrics.model import STALE_NAN, Labels
from heron.metrics.relabel import apply
from heron.metrics.scrape_config import ScrapeConfig
from heron.metrics.writer import METADATA_SCHEMA

log = logging.getLogger("heron.scrape")

REPORT_NAMES = ("up", "scrape_duration_seconds", "scrape_samples_scraped",
                "scrape_samples_post_metric_relabeling", "scrape_series_added")

Write = Callable[[list[Labels], np.ndarray, np.ndarray, dict[str, pa.Table] | None], Awaitable[int]]


def _reason(error: str) -> str:
    """A short, bounded label value for a scrape outcome."""
    if not error:
        return "up"
    for key in ("sample limit", "target_limit", "label_limit", "label_name_length", "label_value_length",
                "body size", "parse error", "deadline exceeded", "HTTP status", "ingest queue"):
        if key in error:
            return key.replace(" ", "_").lower()
    return "error"


class ScrapeFailed(Exception):
    """The scrape produced no usable samples (HTTP error, parse error, a limit)."""


@dataclass
class Health:
    health: str = "unknown"
    last_error: str = ""
    last_scrape: float = 0.0
    last_duration: float = 0.0
    samples: int = 0


def next_offset(target_hash: int, interval: float, now: float) -> float:
    """Seconds until this target's slot in the interval (Prometheus' offset by target hash)."""
    slot = (target_hash % int(interval * 1e6)) / 1e6
    return (slot - now % interval) % interval


class ScrapeLoop:
    def __init__(self, target: Target, config: ScrapeConfig, client: httpx.AsyncClient, write: Write,
                 *, quiet_until_up: bool = False, is_self: Callable[[Parsed], bool] | None = None,
                 on_result: Callable[[str, int], None] | None = None) -> None:
        self.target, self.config, self.client, self._write = target, config, client, write
        self.health = Health()
        self.cache = LabelCache()
        self._final: dict[Labels, Labels | None] = {}
        self._last: set[Labels] = set()           # series of the last scrape without own timestamps
        self._report_series = self._report_labels()
        self._reported = False
        self._meta_key: object = None
        self.quiet_until_up = quiet_until_up      # self-scrape: no `up 0` before Heron serves HTTP
        self.is_self = is_self                    # self-scrape: is it this instance answering?
        self.forced_error = ""                    # set by the manager (target_limit exceeded)
        self.on_result = on_result  # (result: "up" or a failure reason, samples lost)
        self.task: asyncio.Task[None] | None = None
        self.next_scrape_at = 0.0

    def _report_labels(self) -> list[Labels]:
        base = [(k, v) for k, v in self.target.labels.items()]
        return [tuple(sorted([("__name__", n), *base])) for n in REPORT_NAMES]

    def take_over(self, old: ScrapeLoop) -> None:
        """Continue an old loop of the same target (config reload): its last series and health."""
        self._last, self._reported, self.health = old._last, old._reported, old.health

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"scrape {self.target.url}")

    async def run(self) -> None:
        """Scrape on a fixed grid (like Go's ticker): late wake-ups do not drift the schedule."""
        interval = self.target.interval
        next_at = time.time() + next_offset(self.target.hash, interval, time.time())
        while True:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            started = time.time()
            next_at += interval
            if next_at <= started:  # missed ticks (a long pause): skip them, as a ticker does
                next_at += ((started - next_at) // interval + 1) * interval
            self.next_scrape_at = next_at
            try:
                await self.scrape_once(started)
            except (asyncio.CancelledError, PipelineClosed):
                raise
            except Exception:
                log.exception("scrape of %s failed unexpectedly", self.target.url)

    async def fetch(self) -> tuple[bytes, str]:
        c = self.config
        headers = {"Accept": self.config.accept, "X-Prometheus-Scrape-Timeout-Seconds": f"{self.target.timeout:g}"}
        if c.authorization:
            headers["Authorization"] = f"{c.authorization[0]} {c.authorization[1]}"
        auth = httpx.BasicAuth(*c.basic_auth) if c.basic_auth else None
        try:
            # tls_config.server_name: the name sent as SNI and checked against the certificate.
            ext = {"sni_hostname": c.tls.server_name} if c.tls.server_name else None
            resp = await self.client.get(self.target.url, headers=headers, auth=auth, extensions=ext,
                                         timeout=self.target.timeout, follow_redirects=c.follow_redirects)
        except httpx.TimeoutException:
            raise ScrapeFailed(f"Get \"{self.target.url}\": context deadline exceeded") from None
        except httpx.HTTPError as exc:
            raise ScrapeFailed(f"Get \"{self.target.url}\": {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise ScrapeFailed(f"server returned HTTP status {resp.status_code} {resp.reason_phrase}")
        body = resp.content
        if c.body_size_limit and len(body) > c.body_size_limit:
            raise ScrapeFailed(f"body size limit exceeded ({len(body)} > {c.body_size_limit} bytes)")
        return body, resp.headers.get("content-type", "")

    def _labels_of(self, scraped: Labels) -> Labels | None:
        """Scraped series -> stored series (target labels, honor_labels, metric relabeling)."""
        hit = self._final.get(scraped, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        merged = dict(scraped)
        for name, value in self.target.labels.items():
            if name in merged and not self.config.honor_labels:
                exported = "exported_" + name
                while exported in merged:
                    exported = "exported_" + exported
                merged[exported] = merged[name]
                merged[name] = value
            elif name not in merged:
                merged[name] = value
        out = apply(list(self.config.metric_relabel), merged) if self.config.metric_relabel else \
            {k: v for k, v in merged.items() if v != ""}
        final = tuple(sorted(out.items())) if out is not None and out.get("__name__") else None
        if len(self._final) > 500_000:
            self._final.clear()
        self._final[scraped] = final
        return final

    def _check_limits(self, series: list[Labels]) -> None:
        c = self.config
        if c.sample_limit and len(series) > c.sample_limit:
            raise ScrapeFailed(f"sample limit exceeded ({len(series)} > {c.sample_limit})")
        if c.label_limit or c.label_name_length_limit or c.label_value_length_limit:
            for s in set(series):
                if c.label_limit and len(s) > c.label_limit:
                    raise ScrapeFailed(f"label_limit exceeded (metric: {s[0][1] if s else ''}, "
                                       f"number of labels: {len(s)}, limit: {c.label_limit})")
                for k, v in s:
                    if c.label_name_length_limit and len(k) > c.label_name_length_limit:
                        raise ScrapeFailed(f"label_name_length_limit exceeded (label name: {k}, "
                                           f"limit: {c.label_name_length_limit})")
                    if c.label_value_length_limit and len(v) > c.label_value_length_limit:
                        raise ScrapeFailed(f"label_value_length_limit exceeded (label name: {k}, "
                                           f"limit: {c.label_value_length_limit})")

    async def scrape_once(self, started: float | None = None) -> None:
        started = time.time() if started is None else started
        ts_ms = int(started * 1000)
        scraped = post = added = 0
        series: list[Labels] = []
        values = np.empty(0)
        ts = np.empty(0, dtype=np.int64)
        error = ""
        parsed: Parsed | None = None
        try:
            if self.forced_error:
                raise ScrapeFailed(self.forced_error)
            body, ctype = await self.fetch()
            parsed = await asyncio.to_thread(parse, body, ctype, self.cache)
            if self.is_self is not None and not self.is_self(parsed):
                # Another process holds our listen address (e.g. before this instance serves): not us.
                self.health = Health("unknown", "another process answers at this address", started)
                return
            scraped = len(parsed.series)
            finals = [self._labels_of(s) for s in parsed.series]
            keep = np.fromiter((f is not None for f in finals), dtype=bool, count=len(finals))
            series = [f for f in finals if f is not None]
            values = parsed.values[keep]
            own_ts = parsed.ts_ms[keep]
            post = len(series)
            self._check_limits(series)
            if len(set(series)) != len(series):  # duplicates: keep the first, as Prometheus does
                first: dict[Labels, int] = {}
                for i, s in enumerate(series):
                    first.setdefault(s, i)
                idx = np.fromiter(sorted(first.values()), dtype=np.int64)
                series = [series[i] for i in idx]
                values, own_ts = values[idx], own_ts[idx]
            if self.config.honor_timestamps:
                ts = np.where(own_ts >= 0, own_ts, ts_ms)
            else:
                ts = np.full(len(series), ts_ms, dtype=np.int64)
                own_ts = np.full(len(series), -1, dtype=np.int64)
        except ScrapeFailed as exc:
            error = str(exc)
        except BadRequest as exc:
            error = f"parse error: {exc}"
        if error and self.quiet_until_up and not self._reported and "status" not in error:
            return
        duration = time.time() - started
        if error:
            series, values, ts, own_ts = [], np.empty(0), np.empty(0, dtype=np.int64), np.empty(0, np.int64)
            post = 0
        current = {s for s, t in zip(series, own_ts.tolist(), strict=True) if t < 0}
        added = len(current - self._last)
        gone = self._last - current
        report = np.array([0.0 if error else 1.0, duration, scraped, post, added])
        all_series = series + sorted(gone) + self._report_series
        all_values = np.concatenate([values, np.full(len(gone), STALE_NAN), report])
        all_ts = np.concatenate([ts, np.full(len(gone) + len(report), ts_ms, dtype=np.int64)])
        extra = self._metadata(parsed) if parsed is not None and not error else None
        if parsed is not None and parsed.exemplar_text and not error:
            table = self._exemplars(parsed, finals, ts_ms)
            if table is not None:
                extra = {**(extra or {}), "metric_exemplars": table}
        try:
            # Shielded: stopping a loop must not cancel a write the pipeline is already making
            # durable (a cancelled pipeline future would be resolved later by its writer thread).
            await asyncio.shield(self._write(all_series, all_values, all_ts, extra))
        except Backpressure as exc:
            error = error or f"ingest queue is full: {exc}"
            if self.on_result:
                self.on_result("backpressure", len(all_series))
        else:
            self._last = current
            self._reported = True
        self.health = Health("down" if error else "up", error, started, duration, post)
        if self.on_result:
            self.on_result(_reason(error), scraped if error else 0)

    def _exemplars(self, parsed: Parsed, finals: list[Labels | None], ts_ms: int) -> pa.Table | None:
        """OpenMetrics exemplars of the kept series (after relabeling); a malformed one is
        dropped, as Prometheus drops exemplars it cannot add."""
        rows = []
        for i, text in parsed.exemplar_text:
            final = finals[i]
            if final is None:
                continue
            try:
                labels, value, ts = parse_openmetrics(text, ts_ms)
            except BadRequest:
                continue
            rows.append((final, labels, ts, value))
        return exemplar_table(rows) if rows else None

    def _metadata(self, parsed: Parsed) -> dict[str, pa.Table] | None:
        fams = parsed.families
        key = tuple((f.name, f.type, f.help, f.unit) for f in fams.values())
        if not fams or key == self._meta_key:
            return None
        self._meta_key = key
        cols = list(zip(*key, strict=True))
        return {"metric_metadata": pa.table([pa.array(c, pa.string()) for c in cols], schema=METADATA_SCHEMA)}

    async def stale_all(self, at_ms: int) -> None:
        """Mark every series of this target stale (the target went away)."""
        if not self._reported:
            return
        series = sorted(self._last) + self._report_series
        await asyncio.shield(self._write(series, np.full(len(series), STALE_NAN),
                                         np.full(len(series), at_ms, dtype=np.int64), None))
        self._last = set()
