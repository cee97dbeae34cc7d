"""Schemathesis against the real processes: generated requests from /openapi.json never get a
5xx or a response the document does not describe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.stack import Stack, running_stack

CONTRACT_DB = 12
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
def contract_stack(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(redis_server, CONTRACT_DB, tmp_path_factory.mktemp("contract"))


def test_generated_requests_get_documented_answers(contract_stack: Stack) -> None:
    # schemathesis' own pytest plugin (from_fixture/parametrize) does not run under pytest 9,
    # so each operation's Hypothesis strategy is driven directly.
    schema = schemathesis.openapi.from_url(f"{contract_stack.url}/openapi.json")
    tested = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS)
            tested.append((case.operation.label, response.status_code))

        run()
    assert {label for label, _ in tested} == {operation.label for operation in operations}
    print(f"{len(tested)} requests over {len(operations)} operations:", sorted(set(tested)))
