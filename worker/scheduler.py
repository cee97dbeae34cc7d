"""`python -m worker.scheduler`: rq-scheduler's Scheduler, moving delayed jobs onto their queues.

It puts the periodic sweep back whenever it finds it missing, and waits out a Redis that is away.
"""

from __future__ import annotations

from worker.stopping import stop_quietly_until_ready

# Before the rest loads (a second or so): a stop meanwhile exits at once, without a traceback.
stop_quietly_until_ready()

import argparse
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

import rq_scheduler
from redis import Redis
from redis.exceptions import RedisError

from shared import logs, names, schedules
from shared.settings import Settings, from_environment_or_exit

log = logging.getLogger("imgpress.scheduler")


class Scheduler(rq_scheduler.Scheduler):  # type: ignore[misc]
    """rq-scheduler's Scheduler on the maintenance queue, keeping the periodic sweep registered."""

    def __init__(self, connection: Redis, settings: Settings, interval: float) -> None:
        super().__init__(queue_name=names.MAINTENANCE_QUEUE, connection=connection, interval=interval)
        self.settings = settings
        self.stopped = False
        self.started = False

    def enqueue_jobs(self) -> Any:
        """Register the sweep again if it is gone (a stall outlived its record), then run what is due."""
        if schedules.ensure_sweep(self.connection, self.settings):
            # At start-up it is simply not there yet; later it was lost (a stall outlived it).
            (log.warning if self.started else log.info)("registered the periodic sweep")
        self.started = True
        return super().enqueue_jobs()

    def _install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM end `run` (which then records this scheduler's death)."""

        def stop(signum: int, frame: FrameType | None) -> None:
            self.stopped = True
            raise SystemExit(0)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    """Run the scheduler until SIGTERM or SIGINT; while Redis is away, try again each second."""
    parser = argparse.ArgumentParser(prog="python -m worker.scheduler", description=__doc__)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between checks (default 5)")
    args = parser.parse_args(argv)
    settings = from_environment_or_exit()
    logs.configure()
    connection = Redis.from_url(settings.redis_url)
    away = False
    while True:
        scheduler = Scheduler(connection, settings, args.interval)
        try:
            scheduler.run()
            return 0
        except RedisError as exc:
            if scheduler.stopped:
                return 0
            if not away:
                log.warning("Redis cannot be reached (%s); trying again every second", exc)
            away = True
        try:
            time.sleep(1)
            connection.ping()
        except RedisError:
            continue
        if away:
            log.info("Redis answers again")
            away = False


if __name__ == "__main__":
    sys.exit(main())
