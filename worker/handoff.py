"""Transactions a job and its worker share (the start, sent while the image is encoded; writes
deferred to the worker's record of the outcome) (docs/design.md, "Shared transactions")."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from redis import Redis
from redis.client import Pipeline

from worker import stopping

_held: Pipeline | None = None
#: Whether an ImgpressWorker runs the current job and will send what is deferred.
_carried = False
_deferred: list[Callable[[Pipeline], None]] = []
_sender: ThreadPoolExecutor | None = None


def hold(pipeline: Pipeline) -> None:
    """Leave the worker's unsent transaction for the running job's first one (worker side)."""
    global _held
    _held = pipeline


def release() -> None:
    """Send a held transaction that the job did not take (worker side, as the job ends)."""
    global _held
    pipeline, _held = _held, None
    if pipeline is not None:
        with pipeline:
            pipeline.execute()


def transaction(connection: Redis) -> tuple[Pipeline, int]:
    """A transaction for the running job's writes, and the index of the first reply that is theirs.

    The held one, with the worker's commands already in, if there is one; else a new one.
    """
    global _held
    pipeline, _held = _held, None
    if pipeline is None:
        return connection.pipeline(), 0
    return pipeline, len(pipeline.command_stack)


def send_in_background(pipeline: Pipeline, stage: Callable[[Pipeline], None]) -> Future[list[Any]]:
    """Add `stage`'s commands to a transaction and send it, both in the process's sender thread,
    which reads the replies too.

    The caller goes on at once; `.result()` gives the replies or raises the transaction's error.
    """
    global _sender
    if _sender is None:
        _sender = ThreadPoolExecutor(1, thread_name_prefix="imgpress-sender")
        with stopping.signals_to_main_thread():  # the first submit starts the thread
            return _sender.submit(_execute, pipeline, stage)
    return _sender.submit(_execute, pipeline, stage)


def _execute(pipeline: Pipeline, stage: Callable[[Pipeline], None]) -> list[Any]:
    with pipeline:
        stage(pipeline)
        return pipeline.execute()


def _forget_sender() -> None:
    global _sender
    _sender = None  # its thread is not in a forked child (RQ's forking workers)


os.register_at_fork(after_in_child=_forget_sender)


def carry() -> None:
    """Take on sending what the next job defers (worker side, as it prepares the job)."""
    global _carried
    _carried = True
    _deferred.clear()


def defer(connection: Redis, stage: Callable[[Pipeline], None]) -> None:
    """Have `stage`'s writes sent with the worker's record of the job's outcome, or now if none will be."""
    if _carried:
        _deferred.append(stage)
    else:
        send(connection, stage)


def send(connection: Redis, stage: Callable[[Pipeline], None]) -> None:
    """Send `stage`'s writes now, in a transaction of their own."""
    with connection.pipeline() as pipeline:
        stage(pipeline)
        pipeline.execute()


def stage_deferred(pipeline: Pipeline) -> None:
    """Add what the job deferred to a transaction the worker sends as the job ends (worker side)."""
    for stage in _deferred:
        stage(pipeline)
    done()


def done() -> None:
    """The job is over: nothing more is carried (worker side); what was not sent is left to the sweep."""
    global _carried
    _carried = False
    _deferred.clear()
