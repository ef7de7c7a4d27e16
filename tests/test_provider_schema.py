"""get_provider_info() against the schemas that ship with the installed Airflow (run on 3.3 and on 2.11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_aisearch import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent


def _schema(name: str) -> dict[str, Any]:
    path = AIRFLOW_DIR / name
    assert path.is_file(), f"{path} missing from the installed Airflow {airflow.__version__}"
    schema = json.loads(path.read_text())
    assert isinstance(schema, dict)
    return schema


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def test_provider_info_validates_against_airflow_schema() -> None:
    schema = _schema("provider_info.schema.json")
    info = get_provider_info()
    assert _errors(schema, info) == []
    if "hooks" in schema["properties"]:
        # Airflow 3's schema describes every key a provider returns; ours must all be known there
        # (a misspelt key would otherwise be ignored by the providers manager, not rejected).
        assert sorted(set(info) - set(schema["properties"])) == []


def test_connection_types_validate_against_strict_provider_yaml_fragment() -> None:
    full = _schema("provider.yaml.schema.json")
    # The connection-types fragment of provider.yaml's schema, with the document's definitions for any $ref.
    fragment = {**full["properties"]["connection-types"], "definitions": full.get("definitions", {})}
    assert _errors(fragment, get_provider_info()["connection-types"]) == []


@pytest.mark.parametrize(
    ("path", "bad_value"),
    [
        (("connection-types", 0, "connection-type"), 42),
        (("package-name",), None),
    ],
)
def test_schema_check_rejects_broken_info(path: tuple[Any, ...], bad_value: Any) -> None:
    # The check above is live: a wrong type in the info fails validation on the installed schema.
    info = get_provider_info()
    node: Any = info
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad_value
    assert _errors(_schema("provider_info.schema.json"), info) != []
