"""Per-caller upload rate limit (IMGPRESS_RATE_LIMIT): a fixed window per API key or client
address, counted in Redis so it holds across API processes."""

from __future__ import annotations

import math
import time

from redis.asyncio import Redis

from shared import names
from shared.errors import RateLimited
from shared.settings import Settings


async def check_rate(connection: Redis, settings: Settings, who: str) -> None:
    """Count one upload for `who`; raise RateLimited once the window's allowance is used."""
    if settings.rate_limit is None:
        return
    allowed, period = settings.rate_limit
    now = time.time()
    window = int(now // period)
    key = names.rate_key(who, window)
    async with connection.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, period + 1)
        used = int((await pipe.execute())[0])
    if used > allowed:
        raise RateLimited(retry_after=max(1, math.ceil((window + 1) * period - now)))
