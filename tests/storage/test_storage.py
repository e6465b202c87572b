"""Storage contract tests: run on chDB always, and on a ClickHouse server when
HERON_TEST_CLICKHOUSE_URL points at one (none runs on the project's machines)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest

from heron.exceptions import StorageError
from heron.storage import migrate
from heron.storage.base import Storage
from heron.storage.schema import MIGRATIONS, apply_retention
from tests.conftest import CHDB_PATH

BACKENDS = ["chdb"] + (["clickhouse"] if os.environ.get("HERON_TEST_CLICKHOUSE_URL") else [])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Storage]:
    db = f"st_{uuid.uuid4().hex[:10]}"
    s: Storage
    if request.param == "chdb":
        from heron.storage.chdb import ChDBStorage

        s = ChDBStorage(CHDB_PATH, db)
    else:
        from heron.storage.clickhouse import ClickHouseStorage

        s = ClickHouseStorage(os.environ["HERON_TEST_CLICKHOUSE_URL"], db)
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{db}`")


def test_migrations_apply_once_and_record_ids(backend: Storage) -> None:
    assert migrate(backend) == [m.id for m in MIGRATIONS]
    assert migrate(backend) == []
    tables = set(backend.execute(
        f"SELECT name FROM system.tables WHERE database = '{backend.database}'").column("name").to_pylist())
    assert {"metric_series", "metric_samples", "metric_metadata", "schema_migrations"} <= tables


def test_insert_arrow_and_query_back(backend: Storage) -> None:
    migrate(backend)
    data = pa.table({"series_id": pa.array([1, 1, 2], pa.uint64()), "ts": pa.array([1000, 2000, 1000]),
                     "value": [0.5, float("nan"), 3.0]})
    backend.insert("metric_samples", data)
    out = backend.execute(f"SELECT series_id, ts, value FROM `{backend.database}`.metric_samples "
                          "ORDER BY series_id, ts")
    assert out.column("series_id").to_pylist() == [1, 1, 2]
    assert out.column("ts").to_pylist() == [1000, 2000, 1000]
    assert out.column("value").to_pylist()[0] == 0.5


def test_dedup_token_makes_insert_idempotent(backend: Storage) -> None:
    migrate(backend)
    data = pa.table({"series_id": pa.array([7, 7], pa.uint64()), "ts": pa.array([1, 2]), "value": [1.0, 2.0]})
    backend.insert("metric_samples", data, dedup_token="tok-1")
    backend.insert("metric_samples", data, dedup_token="tok-1")
    backend.insert("metric_samples", data, dedup_token="tok-2")
    n = backend.execute(f"SELECT count() AS n FROM `{backend.database}`.metric_samples").column("n")[0].as_py()
    assert n == 4


def test_query_parameters_are_bound_not_interpolated(backend: Storage) -> None:
    out = backend.execute("SELECT {s:String} AS s", {"s": "x'; DROP TABLE y; --"})
    assert out.column("s").to_pylist() == ["x'; DROP TABLE y; --"]


def test_bad_sql_raises_storage_error(backend: Storage) -> None:
    with pytest.raises(StorageError, match=r"(?i)syntax"):
        backend.execute("SELEC 1")


def test_retention_sets_ttl_per_signal(backend: Storage) -> None:
    migrate(backend)
    apply_retention(backend, {"metrics": 3})
    ddl = backend.execute(f"SELECT create_table_query AS q FROM system.tables WHERE database = "
                          f"'{backend.database}' AND name = 'metric_samples'").column("q")[0].as_py()
    assert "toIntervalDay(3)" in ddl
    apply_retention(backend, {"metrics": 30})
    ddl = backend.execute(f"SELECT create_table_query AS q FROM system.tables WHERE database = "
                          f"'{backend.database}' AND name = 'metric_samples'").column("q")[0].as_py()
    assert "toIntervalDay(30)" in ddl and "toIntervalDay(3)" not in ddl


def test_second_chdb_path_in_one_process_is_refused_clearly(tmp_path) -> None:
    from heron.storage.chdb import ChDBStorage

    ChDBStorage(CHDB_PATH, "probe_db")
    with pytest.raises(StorageError, match="already open"):
        ChDBStorage(tmp_path / "other", "x")


def test_tuning_migration_a_server_refuses_is_skipped_not_fatal(storage, monkeypatch, caplog) -> None:
    """A performance-only setting an older server lacks must not stop Heron from starting; a
    schema statement it refuses still must."""
    from heron.storage import schema

    migrate(storage)
    bad = "ALTER TABLE {db}.error_events MODIFY SETTING no_such_setting_for_heron_tests = 1"
    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, schema.Migration("9998_tuning", (bad,), tuning=True)])
    with caplog.at_level("WARNING", logger="heron.storage.schema"):
        assert migrate(storage) == ["9998_tuning"]
    assert "9998_tuning" in caplog.text and "no_such_setting_for_heron_tests" in caplog.text
    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, schema.Migration("9999_schema", (bad,))])
    with pytest.raises(StorageError):
        migrate(storage)
