"""The worker pool `python -m worker` runs: RQ's WorkerPool of ImgpressWorkers on imgpress's queues,
stopped as one: a stop reaches each worker once, and a worker never outlives its pool."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from collections.abc import Iterable
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from redis import ConnectionPool, Redis
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.worker_pool import WorkerPool

from shared import logs, names
from worker import pipeline
from worker.rqworker import ImgpressWorker
from worker.stopping import (
    die_with_parent,
    hold_stop_signals,
    release_stop_signals,
    stop_quietly_until_ready,
    stop_signals_held,
)

log = logging.getLogger(__name__)

#: Seconds between a starting worker's attempts to reach Redis.
REDIS_RETRY_SECONDS = 1.0
#: The queues a pool can take, by the name `python -m worker --queues` gives.
QUEUES = {
    "compression": names.COMPRESSION_QUEUES,
    "webhooks": names.WEBHOOK_QUEUES,
    "all": names.WORKER_QUEUES,
}


def _run(
    parent: int,
    name: str,
    queue_names: list[str],
    connection_class: type[Redis],
    pool_class: type[Connection],
    pool_kwargs: dict[str, Any],
    burst: bool,
    logging_level: str,
) -> None:
    """A pool worker's life: tied to its pool, logging as imgpress does; RQ's `run_worker` but
    for that and for RQ's own scheduler, which imgpress does not use (rq-scheduler runs its
    delayed jobs: `python -m worker.scheduler`)."""
    # A stop that comes while the worker registers itself waits for its work loop, which ends
    # it cleanly (deregistered); the pool's own handlers, inherited, must not run here.
    hold_stop_signals()
    stop_quietly_until_ready()
    die_with_parent(parent)
    logs.configure()
    # In each worker, not before the fork: encoders start thread pools a forked child lacks.
    pipeline.warm_up()
    connection = connection_class(connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs))
    _wait_for_redis(connection)
    worker = ImgpressWorker(queue_names, name=name, connection=connection)
    worker.work(burst=burst, logging_level=logging_level)


def _wait_for_redis(connection: Redis) -> None:
    """Return once Redis answers (a worker registers itself as it starts), saying once that it
    waits; meanwhile a stop ends the process at once: it holds nothing yet."""
    release_stop_signals()
    try:
        for attempt in itertools.count():
            try:
                connection.ping()
                return
            except RedisConnectionError as exc:
                if attempt == 0:
                    log.warning("Redis cannot be reached (%s); the worker starts once it can", exc)
                time.sleep(REDIS_RETRY_SECONDS)
    finally:
        hold_stop_signals()


class Pool(WorkerPool):
    """`num_workers` ImgpressWorkers on `queues` (by default compression's, maintenance first),
    each started again if it dies."""

    def __init__(self, connection: Redis, num_workers: int, queues: Iterable[str] = names.COMPRESSION_QUEUES):
        super().__init__(list(queues), connection, num_workers=num_workers, worker_class=ImgpressWorker)
        self._stopping = False

    def get_worker_process(
        self, name: str, burst: bool, _sleep: float = 0, logging_level: str = "INFO"
    ) -> BaseProcess:
        """A forked process that runs one worker (`_run`)."""
        arguments = (self._queue_names, self._connection_class, self._pool_class, self._pool_kwargs)
        return get_context("fork").Process(
            target=_run,
            args=(os.getpid(), name, *arguments, burst, logging_level),
            name=f"imgpress worker {name}",
        )

    def start_workers(self, burst: bool = True, _sleep: float = 0, logging_level: str = "INFO") -> None:
        """Take over SIGINT and SIGTERM first, so a stop during start-up reaches every worker."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        super().start_workers(burst=burst, _sleep=_sleep, logging_level=logging_level)

    def start_worker(
        self, count: int | None = None, burst: bool = True, _sleep: float = 0, logging_level: str = "INFO"
    ) -> None:
        """RQ's, but none once the pool is stopping, and a stop that comes meanwhile waits until
        the new worker is in the pool's list (and so is told to stop too)."""
        with stop_signals_held():
            if not self._stopping:
                super().start_worker(count, burst, _sleep, logging_level)

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask every worker to stop after its job in hand, once: a second SIGINT within a second
        makes RQ's worker stop at once (its cold shutdown), and a group's Ctrl-C, followed by
        the supervisor's SIGTERM, must not turn into one."""
        if self._stopping:
            return
        self._stopping = True
        self.status = self.Status.STOPPED
        for data in list(self.worker_dict.values()):
            self.stop_worker(data, sig=signal.SIGTERM)
