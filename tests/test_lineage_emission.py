"""OpenLineage that will not be emitted costs no request: the listener's own questions, asked before the instance GET.

Real OpenLineage configuration (``AIRFLOW__OPENLINEAGE__*``, read on every call under pytest), real
operators against the emulator; the request log shows whether the instance was read for lineage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.exceptions import AISearchJobFailedError
from airflow_provider_aisearch.lineage.emission import task_lineage_wanted
from tests.operator_helpers import FakeTI, create_op, ctx, list_op, make_sensor
from tests.test_lineage import needs_openlineage

CREATE = "airflow_provider_aisearch.create_operator.AISearchCreateJobOperator"
SENSOR = "airflow_provider_aisearch.sensors.AISearchJobSensor"
OTHER = "airflow.providers.standard.operators.bash.BashOperator"

pytestmark = needs_openlineage


def _policy(operator: str, **controls: bool) -> str:
    return json.dumps([{"scope": {"operator": operator}, "controls": controls}])


#: (name, settings, whether the create operator's lineage is wanted)
SETTINGS: list[tuple[str, dict[str, str], bool]] = [
    ("enabled", {}, True),
    ("selective_enable, nothing enabled", {"SELECTIVE_ENABLE": "True"}, False),
    ("disabled_for_operators", {"DISABLED_FOR_OPERATORS": f"{OTHER};{CREATE}"}, False),
    ("disabled_for_operators, another one", {"DISABLED_FOR_OPERATORS": OTHER}, True),
    ("emission_policy emit false", {"EMISSION_POLICY": _policy(CREATE, emit=False)}, False),
    ("emission_policy, no extraction", {"EMISSION_POLICY": _policy(CREATE, extract_operator_metadata=False)}, False),
    ("disabled", {"DISABLED": "True"}, False),
]


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """OpenLineage configured with a transport (so enabled), plus ``settings`` of its ``[openlineage]`` section."""

    def apply(settings: dict[str, str]) -> None:
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "console"}))
        for key, value in settings.items():
            monkeypatch.setenv(f"AIRFLOW__OPENLINEAGE__{key}", value)

    return apply


def instance_reads(emu: AISearchEmulator) -> int:
    return len(emu.requests_to(route="instance"))


@pytest.mark.parametrize(("settings", "wanted"), [s[1:] for s in SETTINGS], ids=[s[0] for s in SETTINGS])
def test_the_create_operator_reads_the_instance_only_when_openlineage_will_ask(
    emu: AISearchEmulator, configure: Callable[[dict[str, str]], None], settings: dict[str, str], wanted: bool
) -> None:
    configure(settings)
    emu.add_instance("docs", type="r2", source="docs-bucket")
    op = create_op()
    assert op.execute(ctx(ti=FakeTI()))["id"]
    assert instance_reads(emu) == (1 if wanted else 0)
    assert len(emu.requests_to(method="POST")) == 1  # the task itself did its work


def test_selective_enable_reads_the_instance_of_an_enabled_task(
    emu: AISearchEmulator, configure: Callable[[dict[str, str]], None]
) -> None:
    from airflow.providers.openlineage.utils.selective_enable import disable_lineage, enable_lineage

    configure({"SELECTIVE_ENABLE": "True"})
    emu.add_instance("docs", type="r2", source="docs-bucket")
    enabled = enable_lineage(create_op(task_id="enabled"))
    enabled.execute(ctx(ti=FakeTI()))
    assert instance_reads(emu) == 1
    assert _source(enabled) == [("r2://" + emu.account_id, "docs-bucket")]  # and its lineage is whole
    disabled = disable_lineage(create_op(task_id="disabled"))
    disabled.execute(ctx(ti=FakeTI()))
    assert instance_reads(emu) == 1


def _source(op: Any) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in op.get_openlineage_facets_on_complete(None).inputs]


@pytest.mark.parametrize("task", ["sensor", "list"])
@pytest.mark.parametrize("settings", [{"SELECTIVE_ENABLE": "True"}, {"DISABLED_FOR_OPERATORS": SENSOR}])
def test_the_sensor_and_the_list_operator_ask_too(
    emu: AISearchEmulator, configure: Callable[[dict[str, str]], None], task: str, settings: dict[str, str]
) -> None:
    configure(settings)
    emu.add_instance("docs", type="r2", source="docs-bucket")
    job = emu.add_job("docs", duration=0)
    if task == "sensor":
        assert make_sensor(job_id=job.id).execute({})["id"] == job.id
    else:
        assert list_op().execute(ctx(ti=FakeTI()))
    # The list operator is not in disabled_for_operators: its lineage is still read.
    listed_and_wanted = task == "list" and "DISABLED_FOR_OPERATORS" in settings
    assert instance_reads(emu) == (1 if listed_and_wanted else 0)


@pytest.mark.parametrize("settings", [{"SELECTIVE_ENABLE": "True"}, {"DISABLED_FOR_OPERATORS": SENSOR}])
def test_a_failed_job_reads_no_instance_when_openlineage_will_not_ask(
    emu: AISearchEmulator, configure: Callable[[dict[str, str]], None], settings: dict[str, str]
) -> None:
    configure(settings)
    emu.add_instance("docs", type="r2", source="docs-bucket")
    job = emu.add_job("docs", duration=0, end_reason="failed")
    with pytest.raises(AISearchJobFailedError):
        make_sensor(job_id=job.id, log_tail=0).execute({})
    assert instance_reads(emu) == 0


def test_a_question_that_fails_keeps_the_lineage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener would emit with its defaults then; so the instance is read, as before."""
    from airflow.providers.openlineage.utils import emission_policy

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("policy exploded")

    monkeypatch.setattr(emission_policy, "resolve_task_emission_policy", broken)
    assert task_lineage_wanted(create_op()) is True


@pytest.mark.parametrize(
    ("settings", "wanted"),
    [({}, True), ({"SELECTIVE_ENABLE": "True"}, False), ({"DISABLED_FOR_OPERATORS": CREATE}, False)],
    ids=["enabled", "selective_enable", "disabled_for_operators"],
)
def test_an_openlineage_provider_without_emission_policy_is_asked_its_older_questions(
    emu: AISearchEmulator,
    configure: Callable[[dict[str, str]], None],
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, str],
    wanted: bool,
) -> None:
    """Providers before 2.20 have no emission_policy module: is_operator_disabled and is_selective_lineage_enabled."""
    import sys

    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.utils.emission_policy", None)  # ImportError
    configure(settings)
    emu.add_instance("docs", type="r2", source="docs-bucket")
    create_op().execute(ctx(ti=FakeTI()))
    assert instance_reads(emu) == (1 if wanted else 0)
