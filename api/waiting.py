"""Waking requests that wait for a job to change, from one Redis pub/sub subscription.

The worker publishes every status change on `names.EVENTS_CHANNEL`; one listener per API
process fans the news out to the requests waiting on that job. Nothing polls or sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import names

log = logging.getLogger(__name__)

#: Seconds between attempts to subscribe again after Redis went away.
RECONNECT_SECONDS = 1.0


class JobEvents:
    """The process's subscription to job status changes."""

    def __init__(self, connection: Redis) -> None:
        self._connection = connection
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    @contextmanager
    def watch(self, *job_ids: str) -> Iterator[asyncio.Event]:
        """An event set whenever one of `job_ids` changes, for as long as the block runs."""
        event = asyncio.Event()
        for job_id in job_ids:
            self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            for job_id in job_ids:
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[job_id]

    def _notify(self, job_id: str | None) -> None:
        targets = self._waiters.get(job_id, set()) if job_id else set().union(*self._waiters.values())
        for event in targets:
            event.set()

    async def run(self) -> None:
        """Listen until cancelled, subscribing again whenever the connection drops."""
        while True:
            try:
                async with self._connection.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(names.EVENTS_CHANNEL)
                    # Anything published while we were away is lost: let every waiter re-read.
                    self._notify(None)
                    async for message in pubsub.listen():
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # redis-py can turn a cancellation that lands while it connects into a
                # connection error; honour the cancellation, or shutdown would wait forever.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                log.warning("job events: lost Redis (%s); subscribing again", exc)
                await asyncio.sleep(RECONNECT_SECONDS)

    def _dispatch(self, message: dict[str, object]) -> None:
        try:
            data = message.get("data")
            job_id = json.loads(data)["id"] if isinstance(data, bytes | str) else None
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(job_id, str):
            self._notify(job_id)
