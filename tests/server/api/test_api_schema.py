"""Property test of the whole API with schemathesis (issue 12): generated requests for every operation, as an
anonymous, a team and an admin caller. No request may yield a 5xx, and every response must be documented: its
status code, content type, headers and body (the error shape included). Bounded examples keep it to about a minute
on 2 cores."""

from __future__ import annotations

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

from server.db import Team
from tests.utils.server_factories import ADMIN_TOKEN, add_scored, bearer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["anonymous", "team", "admin"])
def caller(request, arena):
    """The app with one team and one scored submission, and the headers of one kind of caller."""
    team_id, token = arena.create_team("fuzzed")
    with arena.database.sessionmaker() as session:
        add_scored(session, session.get(Team, team_id), 1.0, 1.0, arena.clock())
    headers = {"anonymous": {}, "team": bearer(token), "admin": bearer(ADMIN_TOKEN)}[request.param]
    return arena, headers


EXAMPLES_PER_OPERATION = 12
# No 5xx, and every response conforms to the documentation: its status code is documented for the route, its
# content type and headers are the documented ones, its body matches the documented schema (issue 22).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def test_no_request_breaks_the_api_or_its_schema(caller):
    arena, headers = caller
    schema = schemathesis.openapi.from_asgi("/openapi.json", arena.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every API route is covered, not a few

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(headers={**(case.headers or {}), **headers}, checks=CHECKS)

        call()
