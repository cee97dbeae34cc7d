"""Transactions a job and its worker share (the start, sent while the image is encoded; writes
deferred to the worker's record of the outcome) (docs/design.md, "Shared transactions")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from redis import Redis
from redis.client import Pipeline

from worker import stopping

#: Commands a caller adds to a transaction it does not send itself.
Stage = Callable[[Pipeline], None]


class Handoff:
    """What one job shares with the worker that runs it.

    An `ImgpressWorker` makes one per job (`for_job`): it leaves its start transaction here,
    unsent, for the job's first one (`hold`, `transaction`), and sends the writes the job defers
    with its record of the outcome (`stage_deferred`). Under a stock RQ worker a job gets one
    that holds nothing and sends deferred writes at once (`current`).
    """

    def __init__(self, carried: bool) -> None:
        #: Whether a worker will send what is deferred; if not, `defer` sends at once.
        self.carried = carried
        self.held: Pipeline | None = None
        self.deferred: list[Stage] = []

    def hold(self, pipeline: Pipeline) -> None:
        """Leave the worker's unsent transaction for the job's first one (worker side)."""
        self.held = pipeline

    def release(self) -> None:
        """Send a held transaction that the job did not take (worker side, as the job ends)."""
        pipeline, self.held = self.held, None
        if pipeline is not None:
            with pipeline:
                pipeline.execute()

    def transaction(self, connection: Redis) -> tuple[Pipeline, int]:
        """A transaction for the job's writes, and the index of the first reply that is theirs:
        the held one, with the worker's commands already in, if there is one; else a new one."""
        pipeline, self.held = self.held, None
        if pipeline is None:
            return connection.pipeline(), 0
        return pipeline, len(pipeline.command_stack)

    def defer(self, connection: Redis, stage: Stage) -> None:
        """Have `stage`'s writes sent with the worker's record of the job's outcome, or now if
        no worker will send them."""
        if self.carried:
            self.deferred.append(stage)
        else:
            send(connection, stage)

    def stage_deferred(self, pipeline: Pipeline) -> None:
        """Add what the job deferred to a transaction the worker sends as the job ends."""
        for stage in self.deferred:
            stage(pipeline)
        self.deferred.clear()


_CURRENT: ContextVar[Handoff | None] = ContextVar("imgpress_handoff", default=None)


@contextmanager
def for_job() -> Iterator[Handoff]:
    """The handoff of the job a worker is about to run, given to the job's task (worker side).

    When the block ends the job is over: what it deferred and was not sent is left to the sweep.
    """
    shared = Handoff(carried=True)
    token = _CURRENT.set(shared)
    try:
        yield shared
    finally:
        _CURRENT.reset(token)
        shared.carried = False
        shared.deferred.clear()


def current() -> Handoff:
    """The running job's handoff (task side): its worker's, or one of its own under a stock worker."""
    return _CURRENT.get() or Handoff(carried=False)


def send(connection: Redis, stage: Stage) -> None:
    """Send `stage`'s writes now, in a transaction of their own."""
    with connection.pipeline() as pipeline:
        stage(pipeline)
        pipeline.execute()


class _Sender:
    """The process's sender thread, started with the first transaction sent in the background."""

    def __init__(self) -> None:
        self.executor: ThreadPoolExecutor | None = None

    def submit(self, pipeline: Pipeline, stage: Stage) -> Future[list[Any]]:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(1, thread_name_prefix="imgpress-sender")
            with stopping.stop_signals_held():  # the first submit starts the thread
                return self.executor.submit(_execute, pipeline, stage)
        return self.executor.submit(_execute, pipeline, stage)

    def forget(self) -> None:
        self.executor = None  # its thread is not in a forked child (RQ's forking workers)


_SENDER = _Sender()
os.register_at_fork(after_in_child=_SENDER.forget)


def send_in_background(pipeline: Pipeline, stage: Stage) -> Future[list[Any]]:
    """Add `stage`'s commands to a transaction and send it, both in the process's sender thread,
    which reads the replies too.

    The caller goes on at once; `.result()` gives the replies or raises the transaction's error.
    """
    return _SENDER.submit(pipeline, stage)


def _execute(pipeline: Pipeline, stage: Stage) -> list[Any]:
    with pipeline:
        stage(pipeline)
        return pipeline.execute()
