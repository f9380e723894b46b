"""Property-based requests generated from the OpenAPI schema (schemathesis): no server errors,
and every answer conforms to what the schema documents (status, content type, body, headers)."""

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.main import create_app
from app.settings import Settings

# Loaded when the module is collected: schemathesis' lazy fixture loader fails on this pytest.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(
        Settings(threads=1, reload_token="not-guessable", feedback_db=Path(tempfile.mkdtemp()))
    ),
)
# A binary body schema cannot say "a PNG of a digit": schema-valid bytes are rightly refused
# (415/422), and a field the schema calls a file is read as one whatever its declared type.
NOT_FOR_IMAGE_BODIES = [positive_data_acceptance, negative_data_rejection]


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case) -> None:
    case.call_and_validate(excluded_checks=NOT_FOR_IMAGE_BODIES)
