"""Delivering webhooks: POST the ended job's or batch's resource, signed, once, with a short timeout."""

from __future__ import annotations

import json
import logging

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


def body_for(connection: Redis, kind: str, resource_id: str) -> tuple[str, bytes]:
    """The callback URL and JSON body of a delivery; JobNotFound/JobExpired if it is gone."""
    if kind == "batch":
        batch = batches.load(connection, resource_id)
        url, data = batch.callback_url, batch_resource(batch, batches.members(connection, batch))
    else:
        job = jobs.load(connection, resource_id)
        url, data = job.callback_url, job_resource(job)
    assert url is not None
    return url, json.dumps({"event": f"{kind}.ended", kind: data}).encode()


def deliver(connection: Redis, settings: Settings, kind: str, resource_id: str) -> dict[str, object]:
    """POST one delivery; the outcome is returned (and logged), never retried."""
    try:
        url, body = body_for(connection, kind, resource_id)
        callbacks.check_url(url, settings)
    except (JobNotFound, JobExpired):
        return {"status": "gone"}
    except BadOption as exc:
        log.warning("webhook for %s %s refused: %s", kind, resource_id, exc.message)
        return {"status": "refused", "reason": exc.message}
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "imgpress-webhook",
        callbacks.SIGNATURE_HEADER: callbacks.sign(body, settings.webhook_secret),
        callbacks.KIND_HEADER: kind,
    }
    try:
        response = httpx.post(
            url, content=body, headers=headers, timeout=callbacks.TIMEOUT_SECONDS, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        log.warning("webhook for %s %s to %s failed: %s", kind, resource_id, url, exc)
        return {"status": "unreachable"}
    if response.status_code >= 300:
        log.warning("webhook for %s %s to %s answered %s", kind, resource_id, url, response.status_code)
    return {"status": response.status_code}
