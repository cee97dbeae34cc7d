"""The job contract round-trips through plain JSON."""

from __future__ import annotations

import dataclasses
import json

from shared.options import Options
from shared.schema import PARTS, InputInfo, Job, JobError, JobStatus, OutputInfo, from_timestamp, utc_now


def queued() -> Job:
    return Job(
        id="a" * 32,
        status=JobStatus.QUEUED,
        created_at=utc_now(),
        input=InputInfo(filename="x.jpg", media_type="image/jpeg", bytes=1000, width=4, height=3),
        options=Options(quality=70),
    )


def test_round_trip_through_json() -> None:
    job = queued().started().finished(OutputInfo("image/jpeg", 600, 4, 3), utc_now())
    assert Job.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    failed = queued().failed(JobError("corrupt_image", "broken"), utc_now())
    assert Job.from_dict(json.loads(json.dumps(failed.to_dict()))) == failed


def test_to_dict_is_asdict_with_the_derived_fields() -> None:
    finished = queued().started().finished(OutputInfo("image/jpeg", 600, 4, 3, 70, "jpeg"), utc_now())
    failed = queued().failed(JobError("corrupt_image", "broken"), utc_now())
    for job in (queued(), finished, failed):
        expected = dataclasses.asdict(job) | {"status": job.status.value}
        assert job.to_dict() == expected | {"saved_bytes": job.saved_bytes, "saved_ratio": job.saved_ratio}
    # to_dict() copies PARTS one level deep: every nested dataclass is one, holding no dataclass itself.
    nested = {
        f.name for f in dataclasses.fields(finished) if dataclasses.is_dataclass(getattr(finished, f.name))
    }
    assert nested <= set(PARTS)
    for name in PARTS:
        part = getattr(finished, name) or getattr(failed, name)
        assert not any(
            isinstance(value, dict | list | tuple) or dataclasses.is_dataclass(value)
            for value in vars(part).values()
        )


def test_savings_are_derived() -> None:
    job = queued().finished(OutputInfo("image/jpeg", 600, 4, 3), utc_now())
    data = job.to_dict()
    assert (data["saved_bytes"], data["saved_ratio"]) == (400, 0.4)
    assert queued().to_dict()["saved_bytes"] is None


def test_states() -> None:
    assert [s.value for s in JobStatus] == ["queued", "started", "finished", "failed"]
    assert [s.is_terminal for s in JobStatus] == [False, False, True, True]


def test_timestamps_are_utc_iso() -> None:
    stamp = utc_now()
    assert stamp.endswith("Z")
    assert from_timestamp(stamp).utcoffset() is not None
