"""Embedded backend: chDB, the ClickHouse engine inside this process.

chDB opens one data path per process; a second path is refused. Every `ChDBStorage` in a process
therefore shares one session, and instances are isolated by database name.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from heron.exceptions import StorageError
from heron.storage.base import qualified, settings_clause

_lock = threading.Lock()
# Inserts hand chDB an Arrow IPC file and run a plain INSERT ... SELECT FROM file(): chDB never
# calls back into Python (its Python() table function deadlocked against concurrent queries on
# the GIL) and never holds a streaming insert open (which refuses every other statement). So
# queries and inserts from many threads run in parallel; only statements with query parameters
# run alone (_ParamsLock).
_SPOOL = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
_session: Any = None
_session_path: str | None = None
_STALE_UNNAMED_S = 3600.0


def sweep_spool(directory: Path | None = None) -> int:
    """Remove insert files left by dead processes (a kill -9 or a crash mid-insert leaves them,
    and in /dev/shm they hold RAM until reboot). Files name their writer's pid; files from before
    that naming are removed once an hour old. Returns how many were removed."""
    removed = 0
    for f in (directory or _SPOOL).glob("heron-insert-*.arrows"):
        owner = f.name.split("-")[2]
        try:
            if owner.isdigit():
                try:
                    os.kill(int(owner), 0)
                    continue
                except ProcessLookupError:
                    pass
                except PermissionError:  # alive, another user's
                    continue
            elif time.time() - f.stat().st_mtime < _STALE_UNNAMED_S:
                continue
            f.unlink()
            removed += 1
        except OSError:
            continue
    return removed


class _ParamsLock:
    """Query parameters live in the shared session, not in the query: two statements with params
    running at once get each other's values (silently: `SELECT {x:Int64}` returned the other
    thread's x), and a statement without params running beside one clears them ("Substitution
    `x` is not set"). So a statement with params runs alone; the others still run in parallel."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # exclusive waiters go first: a stream of plain queries cannot starve them

    def acquire(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._waiting += 1
                self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
                self._waiting -= 1
                self._exclusive = True
            else:
                self._cond.wait_for(lambda: not self._exclusive and self._waiting == 0)
                self._shared += 1

    def release(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._exclusive = False
            else:
                self._shared -= 1
            self._cond.notify_all()


_params_lock = _ParamsLock()


def _query(session: Any, sql: str, *args: Any, params: Mapping[str, Any] | None = None) -> Any:
    exclusive = bool(params)
    _params_lock.acquire(exclusive)
    try:
        return session.query(sql, *args, params=dict(params)) if params else session.query(sql, *args)
    finally:
        _params_lock.release(exclusive)


def _open_session(path: str) -> Any:
    global _session, _session_path
    from chdb import session as chdb_session

    with _lock:
        if _session is not None:
            if _session_path != path:
                raise StorageError(
                    f"chDB is already open at {_session_path!r} in this process; "
                    f"cannot open {path!r} too (use another database name instead)")
            return _session
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            _session = chdb_session.Session(path)
        except Exception as exc:  # chDB raises plain RuntimeError
            raise StorageError(f"cannot open chDB at {path}: {exc}") from exc
        _session_path = path
        sweep_spool()
        return _session


class ChDBStorage:
    """Storage on embedded chDB, data under `path`, tables in `database`."""

    def __init__(self, path: str | Path, database: str = "heron") -> None:
        self.path = str(Path(path).resolve())
        self.database = database
        self._session = _open_session(self.path)
        self.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")

    def execute(self, sql: str, params: Mapping[str, Any] | None = None,
                settings: Mapping[str, Any] | None = None) -> pa.Table:
        sql = sql + settings_clause(settings)
        try:
            result = _query(self._session, sql, "ArrowTable", params=params)
        except Exception as exc:
            raise StorageError(str(exc)) from exc
        if isinstance(result, pa.Table):
            return result
        return pa.table({})

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            _query(self._session, sql, params=params)
        except Exception as exc:
            raise StorageError(str(exc)) from exc

    def insert(self, table: str, data: pa.Table, dedup_token: str | None = None) -> None:
        if data.num_rows == 0:
            return
        cols = ", ".join(f"`{c}`" for c in data.column_names)
        settings = settings_clause({"insert_deduplication_token": dedup_token} if dedup_token else None)
        spool = _SPOOL / f"heron-insert-{os.getpid()}-{uuid.uuid4().hex}.arrows"
        try:
            with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_stream(sink, data.schema) as writer:
                writer.write_table(data)
            _query(self._session, f"INSERT INTO {qualified(self.database, table)} ({cols}){settings} "
                                  f"SELECT {cols} FROM file('{spool}', 'ArrowStream')")
        except Exception as exc:
            raise StorageError(f"insert into {table}: {exc}") from exc
        finally:
            spool.unlink(missing_ok=True)

    def close(self) -> None:
        """The shared session stays open for the life of the process (chDB cannot reopen)."""
