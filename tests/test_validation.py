"""Every bad argument is rejected with a ValueError naming the parameter, before any request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aisearch.api import jobs_path
from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.hooks import AISearchHook

BAD_INSTANCE_IDS = [
    "",
    "Docs",
    "docs/other",
    "docs..",
    "a" * 65,
    " docs",
    "docs%2F",
    "dócs",
    "..",
    None,
    5,
    # Cloudflare's pattern ^[a-z0-9_]+(?:-[a-z0-9_]+)*$: '-' only between other characters
    "-docs",
    "docs-",
    "a--b",
    "-",
]
GOOD_INSTANCE_IDS = ["docs", "a", "my_docs-2", "_x_", "a-b-c", "a" * 64]
BAD_JOB_IDS = ["", "   ", ".", "..", "x" * 257, "a\x00b", None, 12]
BAD_NAMESPACES = ["", " ", ".", "..", "n" * 257, 7, "-team", "team-", "Team", "team_a", "t" * 29, "a.b"]
GOOD_NAMESPACES = ["default", "t", "team-a", "a--b", "0" * 28]


def _calls(hook: AISearchHook, **kw: Any) -> list[Callable[[], Any]]:
    instance = kw.get("instance_id", "docs")
    job = kw.get("job_id", "job-1")
    ns = {"namespace": kw["namespace"]} if "namespace" in kw else {}
    return [
        lambda: hook.list_jobs(instance, **ns),
        lambda: hook.iter_jobs(instance, **ns),
        lambda: hook.get_job(instance, job, **ns),
        lambda: hook.create_job(instance, **ns),
        lambda: hook.cancel_job(instance, job, **ns),
        lambda: hook.iter_job_logs(instance, job, **ns),
    ]


@pytest.mark.parametrize("instance_id", BAD_INSTANCE_IDS)
def test_bad_instance_id(hook: AISearchHook, emulator: AISearchEmulator, instance_id: Any) -> None:
    for call in _calls(hook, instance_id=instance_id):
        with pytest.raises(ValueError, match="instance_id"):
            call()
    assert emulator.requests == []


@pytest.mark.parametrize("instance_id", GOOD_INSTANCE_IDS)
def test_good_instance_ids_are_sent(hook: AISearchHook, emulator: AISearchEmulator, instance_id: str) -> None:
    emulator.add_instance(instance_id)
    assert hook.list_jobs(instance_id).jobs == ()
    assert emulator.requests[0].segments == (emulator.account_id, "default", instance_id)


@pytest.mark.parametrize("namespace", GOOD_NAMESPACES)
def test_good_namespaces_are_sent(hook: AISearchHook, emulator: AISearchEmulator, namespace: str) -> None:
    emulator.add_instance("docs", namespace=namespace)
    assert hook.list_jobs("docs", namespace=namespace).jobs == ()
    assert emulator.requests[0].segments == (emulator.account_id, namespace, "docs")


@pytest.mark.parametrize("namespace", ["-team", "Team", "team_a", "t" * 29])
def test_bad_connection_namespace_is_rejected_before_any_request(
    emulator: AISearchEmulator, connect: Callable[..., None], namespace: str
) -> None:
    connect(emulator, namespace=namespace)
    hook = AISearchHook()
    for call in _calls(hook):
        with pytest.raises(ValueError, match="namespace"):
            call()
    assert emulator.requests == []


@pytest.mark.parametrize("job_id", BAD_JOB_IDS)
def test_bad_job_id(hook: AISearchHook, emulator: AISearchEmulator, job_id: Any) -> None:
    with pytest.raises(ValueError, match="job_id"):
        hook.get_job("docs", job_id)
    with pytest.raises(ValueError, match="job_id"):
        hook.cancel_job("docs", job_id)
    with pytest.raises(ValueError, match="job_id"):
        hook.iter_job_logs("docs", job_id)
    assert emulator.requests == []


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
def test_bad_namespace(hook: AISearchHook, emulator: AISearchEmulator, namespace: Any) -> None:
    for call in _calls(hook, namespace=namespace):
        with pytest.raises(ValueError, match="namespace"):
            call()
    with pytest.raises(ValueError, match="namespace"):
        AISearchHook(namespace=namespace)
    assert emulator.requests == []


@pytest.mark.parametrize("per_page", [0, 51, -1, True, "10", 2.5, None])
def test_bad_jobs_per_page(hook: AISearchHook, emulator: AISearchEmulator, per_page: Any) -> None:
    with pytest.raises(ValueError, match="per_page"):
        hook.list_jobs("docs", per_page=per_page)
    with pytest.raises(ValueError, match="per_page"):
        hook.iter_jobs("docs", per_page=per_page)
    assert emulator.requests == []


@pytest.mark.parametrize("per_page", [0, 501, False])
def test_bad_logs_per_page(hook: AISearchHook, emulator: AISearchEmulator, per_page: Any) -> None:
    with pytest.raises(ValueError, match="per_page"):
        hook.iter_job_logs("docs", "job-1", per_page=per_page)
    assert emulator.requests == []


def test_logs_per_page_allows_500(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    job = emulator.add_job("docs", duration=0)
    assert len(list(hook.iter_job_logs("docs", job.id, per_page=500))) == 3
    assert emulator.requests[0].query["per_page"] == "500"


@pytest.mark.parametrize("page", [0, -3, True, "1"])
def test_bad_page(hook: AISearchHook, emulator: AISearchEmulator, page: Any) -> None:
    with pytest.raises(ValueError, match="page"):
        hook.list_jobs("docs", page=page)
    assert emulator.requests == []


@pytest.mark.parametrize("description", ["x" * 256, 5, ["a"]])
def test_bad_description(hook: AISearchHook, emulator: AISearchEmulator, description: Any) -> None:
    with pytest.raises(ValueError, match="description"):
        hook.create_job("docs", description=description)
    assert emulator.requests == []


def test_description_of_255_characters_is_sent(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    hook.create_job("docs", description="d" * 255)
    assert emulator.requests[0].body == {"description": "d" * 255}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": (1, -1)}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"retry_backoff": -1}, "backoff"),
        ({"aisearch_conn_id": ""}, "aisearch_conn_id"),
    ],
)
def test_bad_hook_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AISearchHook(**kwargs)


@pytest.mark.parametrize("job_id", ["a/b", "a%2Fb", "../jobs", "a b", "ünï/cødé", "?x=1", "#frag", "a\\b", "x" * 256])
def test_odd_job_ids_reach_the_api_as_one_segment(hook: AISearchHook, emulator: AISearchEmulator, job_id: str) -> None:
    from airflow_provider_aisearch.exceptions import AISearchNotFoundError

    with pytest.raises(AISearchNotFoundError):
        hook.get_job("docs", job_id)
    (record,) = emulator.requests
    assert record.route == "jobs"
    assert record.segments == (emulator.account_id, "default", "docs", job_id)
    assert record.query == {}


def test_jobs_path_shapes() -> None:
    assert jobs_path("acc", "default", "docs") == "/accounts/acc/ai-search/namespaces/default/instances/docs/jobs"
    assert jobs_path("acc", None, "docs", "j/1", logs=True) == "/accounts/acc/ai-search/instances/docs/jobs/j%2F1/logs"
    with pytest.raises(ValueError, match="job_id"):
        jobs_path("acc", None, "docs", logs=True)
