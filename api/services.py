"""What the lifespan makes and the endpoints use, handed over as typed state."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from starlette.requests import Request

from api.intake import Carrying, QueueDepth
from api.waiting import JobEvents
from shared.settings import Settings


@dataclass(frozen=True)
class Services:
    """Shared resources of one API process."""

    settings: Settings
    #: For RQ and the job store, used from the thread pool.
    redis: Redis
    #: For reads from the event loop (job records), with short timeouts.
    async_redis: AsyncRedis
    events: JobEvents
    #: The queue's length for admission checks, read from Redis when it matters.
    queue_depth: QueueDepth
    #: The waiting uploads whose bytes go through Redis (`api.intake.carry`).
    carrying: Carrying


def services(request: Request) -> Services:
    """The services of the app serving `request`."""
    found: Services = request.state.services
    return found
