"""The JSON resources clients see for jobs and batches, shared by the API and webhook deliveries."""

from __future__ import annotations

from typing import Any

from shared.batches import Batch
from shared.schema import Job, JobStatus


def job_url(job_id: str) -> str:
    """Path of a job's resource."""
    return f"/v1/jobs/{job_id}"


def batch_url(batch_id: str) -> str:
    """Path of a batch's resource."""
    return f"/v1/batches/{batch_id}"


#: Job fields kept in the record but never shown to clients.
PRIVATE_FIELDS = ("owner",)


def job_resource(job: Job) -> dict[str, Any]:
    """The JSON resource a client sees for a job."""
    data = job.to_dict()
    for name in PRIVATE_FIELDS:
        del data[name]
    if data["options"]["quality"] is None:
        data["options"]["quality"] = "auto"  # as the client asked for it
    data["links"] = job_links(job.id)
    return data


def job_links(job_id: str) -> dict[str, str]:
    """The related URLs a job resource lists."""
    url = job_url(job_id)
    return {"self": url, "result": f"{url}/result", "input": f"{url}/input", "events": f"{url}/events"}


def batch_resource(batch: Batch, members: list[Job | None]) -> dict[str, Any]:
    """The JSON resource of a batch: its jobs (None where one was deleted), counts and byte totals."""
    counts = {status.value: 0 for status in JobStatus} | {"deleted": 0}
    input_bytes = output_bytes = 0
    for job in members:
        if job is None:
            counts["deleted"] += 1
            continue
        counts[job.status.value] += 1
        input_bytes += job.input.bytes
        if job.output is not None:
            output_bytes += job.output.bytes
    done = all(job is None or job.status.is_terminal for job in members)
    finished_input = sum(j.input.bytes for j in members if j is not None and j.output is not None)
    url = batch_url(batch.id)
    return {
        "id": batch.id,
        "status": "finished" if done else "running",
        "created_at": batch.created_at,
        "callback_url": batch.callback_url,
        "counts": counts,
        "total": len(members),
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "saved_bytes": finished_input - output_bytes,
        "jobs": [
            {**job_resource(job), "index": batch.index_of(job.id)} for job in members if job is not None
        ],
        "rejected": [item.to_dict() for item in batch.rejected],
        "links": {"self": url, "events": f"{url}/events", "archive": f"{url}/archive"},
    }
