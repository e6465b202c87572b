"""Background work of error tracking: the envelope queue (replay at start, drain at stop),
missed/timed-out cron check-ins and spike resolution."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from heron.errors.ingest import tracking

if TYPE_CHECKING:
    from heron.server import Heron

log = logging.getLogger("heron.errors")
TICK_SECONDS = 5.0


class ErrorsService:
    name = "errors"

    def __init__(self, heron: Heron, interval: float = TICK_SECONDS) -> None:
        self.heron = heron
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        et = tracking(self.heron)
        et.alerts.loop = asyncio.get_running_loop()
        # Replays envelopes acknowledged before a crash; their processing runs behind it.
        replayed = await asyncio.get_running_loop().run_in_executor(None, et.queue.start)
        if replayed:
            log.info("envelope queue: %d acknowledged requests to process after restart", replayed)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # Processes what is queued (bounded wait); anything left is replayed at the next start.
        await asyncio.get_running_loop().run_in_executor(None, tracking(self.heron).queue.close)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            try:
                et = tracking(self.heron)
                await loop.run_in_executor(None, et.crons.tick)
                await loop.run_in_executor(None, et.issues.expire_ignores)
                et.alerts.check_spikes()
            except Exception:
                log.exception("error-tracking tick failed")


def factory(heron: Heron) -> ErrorsService:
    return ErrorsService(heron)
