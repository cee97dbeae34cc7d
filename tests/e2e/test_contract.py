"""Schemathesis against the real processes: generated requests from /openapi.json never get a
5xx or a response the document does not describe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import images
from tests.redis_servers import DatabasePool
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

#: Per operation; enough to reach every documented error path, small enough to run in seconds.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def contract_stack(
    redis_databases: DatabasePool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from running_stack(redis_databases, tmp_path_factory.mktemp("contract"))


def finished_jobs(url: str) -> list[str]:
    """Ids of a finished and a failed job, so generated requests also reach real jobs."""
    ids = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for body in (images.jpeg(), images.jpeg()[:2500]):
            created = http.post("/v1/jobs", content=body, headers={"content-type": "image/jpeg"})
            ids.append(created.json()["id"])
            assert http.get(f"/v1/jobs/{ids[-1]}", params={"wait": 20}).json()["status"] in (
                "finished",
                "failed",
            )
    return ids


def on_real_jobs(strategy: Any, ids: list[str]) -> Any:
    """Cases from `strategy` with every path parameter set to one of the real job ids."""

    def with_id(pair: tuple[schemathesis.Case, str]) -> schemathesis.Case:
        case, job_id = pair
        case.path_parameters = {name: job_id for name in case.path_parameters or {}}
        return case

    return st.tuples(strategy, st.sampled_from(ids)).map(with_id)


def test_generated_requests_get_documented_answers(contract_stack: Stack) -> None:
    # schemathesis' own pytest plugin (from_fixture/parametrize) does not run under pytest 9,
    # so each operation's Hypothesis strategy is driven directly: first as generated (random ids),
    # then with real job ids, deletes last so the others still find their jobs.
    schema = schemathesis.openapi.from_url(f"{contract_stack.url}/openapi.json")
    ids = finished_jobs(contract_stack.url)
    operations = [result.ok() for result in schema.get_all_operations()]
    strategies = [operation.as_strategy() for operation in operations]
    with_ids = [operation for operation in operations if "{" in operation.path]
    strategies += [
        on_real_jobs(operation.as_strategy(), ids) for operation in with_ids if operation.method != "delete"
    ]
    strategies += [
        on_real_jobs(operation.as_strategy(), ids) for operation in with_ids if operation.method == "delete"
    ]
    tested: list[tuple[str, int]] = []
    for strategy in strategies:

        @given(case=strategy)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS)
            tested.append((case.operation.label, response.status_code))

        run()
    assert {label for label, _ in tested} == {operation.label for operation in operations}
    statuses = {status for _, status in tested}
    assert {200, 202, 204, 404, 410} <= statuses
    print(f"{len(tested)} requests over {len(operations)} operations:", sorted(set(tested)))
