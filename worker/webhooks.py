"""Delivering webhooks: POST the ended job's or batch's resource, signed, once, within one deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from functools import cache

import httpx
from redis import Redis

from shared import batches, callbacks, jobs
from shared.errors import BadOption, JobExpired, JobNotFound
from shared.resources import batch_resource, job_resource
from shared.schema import Job
from shared.settings import Settings

log = logging.getLogger(__name__)


def announce_end(connection: Redis, settings: Settings, job: Job, expires_at_epoch: float) -> None:
    """After a job ends: queue its webhook, keep its batch as long as it, and the batch's webhook if done."""
    if job.callback_url:
        callbacks.enqueue_delivery(connection, settings, "job", job.id)
    if job.batch_id is None:
        return
    batches.job_ended(connection, job.batch_id, expires_at_epoch)
    callbacks.announce_batch_if_done(connection, settings, job.batch_id)


def body_for(connection: Redis, kind: str, resource_id: str) -> tuple[str, bytes, str | None]:
    """The callback URL, JSON body and owner of a delivery; JobNotFound/JobExpired if it is gone."""
    if kind == "batch":
        batch = batches.load(connection, resource_id)
        data = batch_resource(batch, batches.members(connection, batch))
        url, owner = batch.callback_url, batch.owner
    else:
        job = jobs.load(connection, resource_id)
        url, data, owner = job.callback_url, job_resource(job), job.owner
    assert url is not None
    return url, json.dumps({"event": f"{kind}.ended", kind: data}).encode(), owner


def deliver(
    connection: Redis, settings: Settings, kind: str, resource_id: str, delivery_id: str
) -> dict[str, object]:
    """POST one delivery within callbacks.TIMEOUT_SECONDS in all; the outcome is returned (and
    logged), never retried.

    - `delivery_id`: the delivery's unique id, sent and signed so a receiver can drop repeats.
    """
    deadline = time.monotonic() + callbacks.TIMEOUT_SECONDS
    try:
        url, body, owner = body_for(connection, kind, resource_id)
        callbacks.check_url(url, settings)
    except (JobNotFound, JobExpired):
        return {"status": "gone"}
    except BadOption as exc:
        log.warning("webhook for %s %s refused: %s", kind, resource_id, exc.message)
        return {"status": "refused", "reason": exc.message}
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "imgpress-webhook",
        callbacks.SIGNATURE_HEADER: callbacks.sign(
            body, callbacks.secret_for(settings, owner), delivery_id, timestamp
        ),
        callbacks.KIND_HEADER: kind,
        callbacks.DELIVERY_HEADER: delivery_id,
        callbacks.TIMESTAMP_HEADER: str(timestamp),
    }
    try:
        status = asyncio.run(_post(url, body, headers, deadline - time.monotonic()))
    except TimeoutError:
        log.warning(
            "webhook for %s %s to %s took over %ss", kind, resource_id, url, callbacks.TIMEOUT_SECONDS
        )
        return {"status": "timeout"}
    except httpx.HTTPError as exc:
        log.warning("webhook for %s %s to %s failed: %s", kind, resource_id, url, exc)
        return {"status": "unreachable"}
    if status >= 300:
        log.warning("webhook for %s %s to %s answered %s", kind, resource_id, url, status)
    return {"status": status}


async def _post(url: str, body: bytes, headers: dict[str, str], seconds: float) -> int:
    """POST `body` and return the reply's status, all within `seconds`; the reply's body is never
    read (leaving the stream unread closes the connection)."""
    async with asyncio.timeout(seconds):
        client = httpx.AsyncClient(verify=_tls(), timeout=seconds, follow_redirects=False)
        async with client, client.stream("POST", url, content=body, headers=headers) as response:
            return response.status_code


@cache
def _tls() -> ssl.SSLContext:
    """The TLS context of every delivery, made once: loading the CA bundle costs ~20 ms of CPU."""
    return httpx.create_ssl_context()
