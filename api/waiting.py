"""Waking requests that wait for a job to change: one Redis pub/sub listener per API process fans
each job's new record out to the requests waiting on it; nothing polls."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import names
from shared.schema import Job

log = logging.getLogger(__name__)

#: Seconds between attempts to subscribe again after Redis went away.
RECONNECT_SECONDS = 1.0


class Watch(asyncio.Event):
    """Set whenever a watched job changes; keeps the newest record each change announced."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, dict[str, Any]] = {}

    def announce(self, job_id: str, record: dict[str, Any] | None) -> None:
        """Note a change of `job_id` (with its new record, if the message carried one) and wake the waiter."""
        if record is None:
            self._records.pop(job_id, None)  # the waiter must read the job's state itself
        else:
            self._records[job_id] = record
        self.set()

    def announced(self, job_id: str) -> Job | None:
        """The newest state of `job_id` announced since the last call, or None: then read it from Redis."""
        record = self._records.pop(job_id, None)
        return None if record is None else Job.from_dict(record)


class JobEvents:
    """The process's subscription to job status changes."""

    def __init__(self, connection: Redis) -> None:
        self._connection = connection
        self._waiters: defaultdict[str, set[Watch]] = defaultdict(set)
        #: Whether the server is stopping: waiters answer with what they have, streams end.
        self.closed = False

    def close(self) -> None:
        """Wake every waiter for good: the server stops, and its clients follow their jobs elsewhere."""
        self.closed = True
        self._notify_all()

    @contextmanager
    def watch(self, *job_ids: str) -> Iterator[Watch]:
        """A Watch set whenever one of `job_ids` changes, for as long as the block runs."""
        event = Watch()
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

    def _notify_all(self) -> None:
        for job_id, waiters in self._waiters.items():
            for event in waiters:
                event.announce(job_id, None)

    async def run(self) -> None:
        """Listen until cancelled, subscribing again whenever the connection drops."""
        while True:
            try:
                async with self._connection.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(names.EVENTS_CHANNEL)
                    # Anything published while we were away is lost: let every waiter re-read.
                    self._notify_all()
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
        data = message.get("data")
        try:
            decoded = json.loads(data) if isinstance(data, bytes | str) else None
        except ValueError:
            return
        if not isinstance(decoded, dict):
            return
        job_id = decoded.get("id")
        if not isinstance(job_id, str) or job_id not in self._waiters:
            return
        # A record has the job's input; a deletion ({"id", "status": "deleted"}) has none.
        record = decoded if "input" in decoded else None
        for event in self._waiters[job_id]:
            event.announce(job_id, record)
