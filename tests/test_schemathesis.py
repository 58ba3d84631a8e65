"""Property-based fuzzing of the whole published OpenAPI: no input may produce a 500.

Schemathesis's pytest plugin does not work with pytest 9, so each operation's hypothesis strategy
is driven directly: the same cases, without the plugin.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from gardien.app import create_app
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import make_key


@pytest.fixture
def api_schema(runtime: Runtime) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(runtime=runtime)
    # The ASGI transport does not run the lifespan; start group commit ourselves.
    app.state.ledger.start()
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        app.state.ledger.stop()


@pytest.mark.slow
@pytest.mark.parametrize("role", [Role.ADMIN, Role.SERVICE])
def test_no_input_produces_a_server_error(
    api_schema: schemathesis.BaseSchema, runtime: Runtime, org: str, role: Role
) -> None:
    headers = {"Authorization": f"Bearer {make_key(runtime, org, role)}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text}"
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                assert content_type[0].startswith("application/problem+json"), f"{where}: {response.text}"

        check()
