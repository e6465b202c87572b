"""The writer's series rows: written once, and rewritten before the retention TTL can drop them."""

from __future__ import annotations

import asyncio

import numpy as np

from heron.metrics.writer import SeriesIndex
from heron.server import Heron


def _written_at(heron: Heron, sid: int) -> int:
    """The newest updated_at (the retention TTL column) of the series' rows, unix seconds."""
    t = heron.storage.execute(f"SELECT toUnixTimestamp(max(updated_at)) AS at FROM "
                              f"`{heron.storage.database}`.metric_series WHERE series_id = {sid}")
    return int(t.column("at")[0].as_py())


async def test_series_rows_are_rewritten_after_the_refresh_period(heron: Heron) -> None:
    labels = (("__name__", "up"), ("job", "api"))
    sid = heron.series_index.id_of(labels)
    w = heron.metrics_writer

    async def write() -> None:
        await w.write([labels], [1], np.array([1_700_000_000_000]), np.array([1.0]))
        heron.pipeline.flush()

    await write()
    first = _written_at(heron, sid)
    await asyncio.sleep(1.1)  # updated_at has second resolution
    await write()
    assert _written_at(heron, sid) == first  # known: not written again within the refresh period
    heron.series_index.refresh = 0.0  # every write is past the refresh period now
    await write()
    assert _written_at(heron, sid) > first  # rewritten with a fresh updated_at

    # A restart learns when each row was written, so a long-lived series is still refreshed.
    fresh = SeriesIndex()
    assert fresh.load(heron.storage) >= 1
    assert fresh.claim_new([sid]) == []
    stale = SeriesIndex(refresh=-1.0)
    stale.load(heron.storage)
    assert stale.claim_new([sid]) == [sid]
