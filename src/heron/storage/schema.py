"""Versioned schema: migrations applied in order at start, and retention through TTL.

Each domain appends its migrations to `MIGRATIONS` (ids are recorded in `schema_migrations`, so
an id is never reused or edited once released). Statements use `{db}` for the database and
`{ttl:SIGNAL}` for the retention in days of a signal. Tables whose rows expire declare it in
`RETENTION` (table -> signal, time expression); `apply_retention` keeps the TTL in line with the
configured days at every start, so changing retention needs no migration.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from heron.storage.base import Storage

log = logging.getLogger("heron.storage.schema")
DEFAULT_RETENTION_DAYS = 15
SIGNALS = ("metrics", "logs", "traces", "errors")


@dataclass(frozen=True)
class Migration:
    id: str
    statements: tuple[str, ...]
    retention: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Performance settings only: a server that refuses them (an older ClickHouse behind
    # `storage.url` that lacks a setting) logs a warning and runs without, instead of not starting.
    tuning: bool = False


MIGRATIONS: list[Migration] = [
    Migration(
        id="0001_metrics",
        statements=(
            # One row per series; series_id is a stable hash of the sorted label set.
            """CREATE TABLE IF NOT EXISTS {db}.metric_series (
                series_id UInt64,
                metric LowCardinality(String),
                labels Map(LowCardinality(String), String),
                updated_at DateTime DEFAULT now()
            ) ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY (metric, series_id)
            SETTINGS non_replicated_deduplication_window = 10000""",
            # Samples; stale markers are Prometheus' stale-NaN bit pattern (0x7ff0000000000002).
            """CREATE TABLE IF NOT EXISTS {db}.metric_samples (
                series_id UInt64,
                ts Int64 CODEC(DoubleDelta, ZSTD(1)),
                value Float64 CODEC(Gorilla, ZSTD(1))
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts, 1000)))
            ORDER BY (series_id, ts)
            SETTINGS non_replicated_deduplication_window = 10000""",
            """CREATE TABLE IF NOT EXISTS {db}.metric_metadata (
                metric LowCardinality(String),
                type LowCardinality(String),
                help String,
                unit LowCardinality(String),
                updated_at DateTime DEFAULT now()
            ) ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY metric
            SETTINGS non_replicated_deduplication_window = 10000""",
        ),
        retention={
            "metric_samples": ("metrics", "toDateTime(intDiv(ts, 1000))"),
            "metric_series": ("metrics", "updated_at"),
        },
    ),
    Migration(
        id="0007_errors",
        statements=(
            # Sentry events after normalization and scrubbing; `issue` is the stable 63-bit group
            # hash (heron.errors.grouping), so rows never wait on the control store.
            """CREATE TABLE IF NOT EXISTS {db}.error_events (
                project UInt32,
                issue UInt64,
                ts DateTime64(3) CODEC(DoubleDelta, ZSTD(1)),
                event_id String,
                level LowCardinality(String),
                platform LowCardinality(String),
                environment LowCardinality(String),
                release LowCardinality(String),
                title String,
                culprit String,
                message String,
                transaction String,
                user_key String,
                tags Map(LowCardinality(String), String),
                data String CODEC(ZSTD(3)),
                INDEX event_id_idx event_id TYPE bloom_filter(0.001) GRANULARITY 4
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(ts)
            ORDER BY (project, issue, ts)
            SETTINGS non_replicated_deduplication_window = 10000""",
            """CREATE TABLE IF NOT EXISTS {db}.error_attachments (
                project UInt32,
                event_id String,
                ts DateTime64(3),
                name String,
                content_type String,
                attachment_type LowCardinality(String),
                size UInt64,
                data String CODEC(ZSTD(3))
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(ts)
            ORDER BY (project, event_id)
            SETTINGS non_replicated_deduplication_window = 10000""",
            # Release health: one row per session update (or aggregate bucket) from the SDKs.
            """CREATE TABLE IF NOT EXISTS {db}.error_sessions (
                project UInt32,
                ts DateTime64(3),
                release LowCardinality(String),
                environment LowCardinality(String),
                status LowCardinality(String),
                quantity UInt32,
                distinct_id String
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(ts)
            ORDER BY (project, release, ts)
            SETTINGS non_replicated_deduplication_window = 10000""",
        ),
        retention={
            "error_events": ("errors", "toDateTime(ts)"),
            "error_attachments": ("errors", "toDateTime(ts)"),
            "error_sessions": ("errors", "toDateTime(ts)"),
        },
    ),
    Migration(
        id="0008_logs_traces",
        statements=(
            # OTLP log records (and later Loki pushes). Ordered by (service, ts) so a service's
            # time range is one contiguous read; the body has a full-text index for search.
            # trace_id/span_id are lowercase hex ("" when absent) to join with spans and errors.
            """CREATE TABLE IF NOT EXISTS {db}.logs (
                ts DateTime64(9) CODEC(Delta, ZSTD(1)),
                observed_ts DateTime64(9) CODEC(Delta, ZSTD(1)),
                service LowCardinality(String),
                severity_text LowCardinality(String),
                severity_number UInt8,
                body String CODEC(ZSTD(1)),
                trace_id String CODEC(ZSTD(1)),
                span_id String CODEC(ZSTD(1)),
                trace_flags UInt8,
                attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
                resource Map(LowCardinality(String), String) CODEC(ZSTD(1)),
                scope_name LowCardinality(String),
                scope_version LowCardinality(String),
                INDEX body_idx body TYPE text(tokenizer = 'splitByNonAlpha') GRANULARITY 1,
                INDEX trace_idx trace_id TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            PARTITION BY toDate(ts)
            ORDER BY (service, ts)
            SETTINGS non_replicated_deduplication_window = 10000""",
            # One spans table for OTLP spans and Sentry transactions. Ids are lowercase hex;
            # status is 'unset' | 'ok' | 'error'; kind is OTel's lowercased (server, client, ...).
            """CREATE TABLE IF NOT EXISTS {db}.spans (
                trace_id String CODEC(ZSTD(1)),
                span_id String CODEC(ZSTD(1)),
                parent_span_id String CODEC(ZSTD(1)),
                service LowCardinality(String),
                name LowCardinality(String),
                kind LowCardinality(String),
                start DateTime64(9) CODEC(DoubleDelta, ZSTD(1)),
                duration_ns UInt64 CODEC(T64, ZSTD(1)),
                status LowCardinality(String),
                status_message String,
                attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
                resource Map(LowCardinality(String), String) CODEC(ZSTD(1)),
                events Array(Tuple(time DateTime64(9), name String, attributes Map(String, String))),
                INDEX trace_id_idx trace_id TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(start)
            ORDER BY (service, name, start)
            SETTINGS non_replicated_deduplication_window = 10000""",
            # trace_id -> time range, so "get trace X" reads one day's partitions, not all.
            """CREATE TABLE IF NOT EXISTS {db}.trace_index (
                trace_id String,
                start SimpleAggregateFunction(min, DateTime64(9)),
                end SimpleAggregateFunction(max, DateTime64(9)),
                spans SimpleAggregateFunction(sum, UInt64)
            ) ENGINE = AggregatingMergeTree
            ORDER BY trace_id""",
            """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_index_mv TO {db}.trace_index AS
            SELECT trace_id, min(s.start) AS start,
                   max(s.start + toIntervalNanosecond(s.duration_ns)) AS end, toUInt64(count()) AS spans
            FROM {db}.spans AS s GROUP BY trace_id""",
        ),
        retention={
            "logs": ("logs", "toDateTime(ts)"),
            "spans": ("traces", "toDateTime(start)"),
            "trace_index": ("traces", "toDateTime(end)"),
        },
    ),
    Migration(
        id="0010_errors_hourly",
        statements=(
            # Events per issue and hour, kept by a materialized view: issue-list sparklines read
            # this instead of every event row (1M events -> a few thousand rows).
            """CREATE TABLE IF NOT EXISTS {db}.error_issue_hours (
                project UInt32,
                issue UInt64,
                hour DateTime,
                events UInt64
            ) ENGINE = SummingMergeTree
            PARTITION BY toYYYYMM(hour)
            ORDER BY (project, issue, hour)""",
            """CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_issue_hours_mv TO {db}.error_issue_hours AS
            SELECT project, issue, toStartOfHour(ts) AS hour, count() AS events
            FROM {db}.error_events GROUP BY project, issue, hour""",
            # events stored before this migration (at start, before ingest begins)
            """INSERT INTO {db}.error_issue_hours
            SELECT project, issue, toStartOfHour(ts) AS hour, count() AS events
            FROM {db}.error_events GROUP BY project, issue, hour""",
        ),
        retention={"error_issue_hours": ("errors", "hour")},
    ),
    Migration(
        id="0011_metric_exemplars",
        statements=(
            # Exemplars (OpenMetrics scrapes, remote write 1.0/2.0, OTLP) of a metric_series row;
            # trace_id (hex, "" when none) is what links a point on a graph to its trace.
            """CREATE TABLE IF NOT EXISTS {db}.metric_exemplars (
                series_id UInt64,
                ts Int64 CODEC(DoubleDelta, ZSTD(1)),
                value Float64,
                labels Map(LowCardinality(String), String),
                trace_id String
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts, 1000)))
            ORDER BY (series_id, ts, trace_id)
            SETTINGS non_replicated_deduplication_window = 10000""",
        ),
        retention={"metric_exemplars": ("metrics", "toDateTime(intDiv(ts, 1000))")},
    ),
    Migration(
        id="0012_errors_fewer_merges",
        tuning=True,
        statements=(
            # 40 KB events: background merges re-read and re-compress every event about twice
            # per 60 000 events (the largest share of the server's CPU per event); a wider merge
            # base merges each part about half as often (rows merged per row inserted
            # 2.46 -> 1.28), for ~10 parts per day partition instead of ~4.
            "ALTER TABLE {db}.error_events MODIFY SETTING merge_selector_base = 10",
        ),
    ),
]


def _render(statement: str, database: str) -> str:
    return statement.replace("{db}", f"`{database}`")


def migrate(storage: Storage) -> list[str]:
    """Apply pending migrations; returns the ids applied now."""
    db = storage.database
    storage.command(
        f"CREATE TABLE IF NOT EXISTS `{db}`.schema_migrations (id String, applied_at DateTime DEFAULT now())"
        " ENGINE = ReplacingMergeTree ORDER BY id")
    done = set(storage.execute(f"SELECT id FROM `{db}`.schema_migrations").column("id").to_pylist())
    applied = []
    for migration in MIGRATIONS:
        if migration.id in done:
            continue
        for statement in migration.statements:
            try:
                storage.command(_render(statement, db))
            except Exception as exc:
                if not migration.tuning:
                    raise
                log.warning("schema %s: skipped, this server refuses it: %s", migration.id, exc)
        storage.command(f"INSERT INTO `{db}`.schema_migrations (id) VALUES ({{id:String}})",
                        {"id": migration.id})
        applied.append(migration.id)
    return applied


def retention_tables() -> dict[str, tuple[str, str]]:
    tables: dict[str, tuple[str, str]] = {}
    for migration in MIGRATIONS:
        tables.update(migration.retention)
    return tables


def apply_retention(storage: Storage, days: dict[str, int]) -> None:
    """Set each table's TTL to its signal's retention (days); a no-op when already so."""
    db = storage.database
    current = {row["name"]: row["create_table_query"] for row in storage.execute(
        f"SELECT name, create_table_query FROM system.tables WHERE database = '{db}'").to_pylist()}
    for table, (signal, expr) in retention_tables().items():
        if table not in current:
            continue
        n = int(days.get(signal, DEFAULT_RETENTION_DAYS))
        ttl = f"{expr} + toIntervalDay({n})"
        if _normalize(ttl) in _normalize(current[table]):
            continue
        storage.command(f"ALTER TABLE `{db}`.`{table}` MODIFY TTL {ttl} "
                        "SETTINGS materialize_ttl_after_modify = 0")


def _normalize(sql: str) -> str:
    return re.sub(r"\s+", "", sql).lower()
