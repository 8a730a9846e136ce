"""A bounded schemathesis run against the real app (issue 21): every operation of the
OpenAPI document, examples generated from its schema, called as the admin (an API key)
on a real hub (its database and services; no camera started): no answer is a 5xx, and
every answer (status code and body) is one the document describes.

Bounded: a few examples per operation (``FUZZ_EXAMPLES``), so the run takes a minute or
two; the streams (SSE, live video) are left to their own tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from accounts.service import create_api_key
from api.app import create_app
from shaobing.bootstrap import Hub
from tests.integration.test_bad_inputs import make_hub

FUZZ_EXAMPLES = 8
CONFORMANCE = [status_code_conformance, response_schema_conformance]
STREAMS = ("/api/events", "/api/cameras/{camera_id}/live.flv")
#: Operations that contact the address they are given (an ONVIF probe of a generated host
#: would reach out to the network): tests/integration/test_camera_admin.py, on loopback.
REACHES_OUT = ("/api/cameras/probe",)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("fuzz")
    camera = {"id": "cam-1", "source": {"url": "rtsp://127.0.0.1:9/x"},
              "area": {"county": "示例县"}}  # fmt: skip
    feedback = [{"name": "platform", "secret": "feedback-secret-0123456789"}]
    h = make_hub(tmp, models_dir, [camera], feedback=feedback)
    yield h
    h.engine.dispose()


@pytest.fixture(scope="module")
def app(hub: Hub) -> FastAPI:
    return create_app(hub.services, hub.sessions, console=False)


@pytest.fixture(scope="module")
def admin_key(hub: Hub) -> str:
    with hub.sessions.begin() as session:
        return create_api_key(session, "admin", "fuzz")


def test_no_operation_answers_5xx(app: FastAPI, admin_key: str) -> None:
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"X-API-Key": admin_key}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    violations: Counter[str] = Counter()  # answers the OpenAPI document does not describe
    answered: set[str] = set()  # operations that succeeded (2xx) at least once
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS or operation.path in REACHES_OUT:
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if 200 <= response.status_code < 300:
                answered.add(f"{case.method} {case.path}")
            try:
                case.validate_response(response, checks=CONFORMANCE)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - a mismatch, counted
                violations[f"{case.method} {case.path}: {type(exc).__name__}"] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} "
                                f"-> {response.status_code}: {response.text[:200]}")  # fmt: skip

        run()
    print(f"{operations} operations, {sum(statuses.values())} calls, statuses "
          f"{dict(sorted(statuses.items()))}; schema-conformance findings in "
          f"{len(violations)} operations: {sorted(violations)[:12]}")  # fmt: skip
    assert operations > 30  # the whole API was generated, not an empty schema
    # Authenticated, the generated calls reach the routes' logic: the key is taken (few 401:
    # the login/logout routes), and every listing and many others succeed at least once (most
    # of the rest ask for ids that do not exist: a 404, which is right).
    print(f"{len(answered)} of {operations} operations answered 2xx at least once")
    assert statuses[401] * 4 < sum(statuses.values()), dict(statuses)
    assert len(answered) >= 20, sorted(answered)
    assert not failures, "\n".join(failures[:30])
    assert not violations, sorted(violations)
