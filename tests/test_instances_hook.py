"""The instance endpoints through AISearchHook and AISearchAsyncClient, over real HTTP against the emulator.

``get_instance`` and ``get_instance_stats`` in both path forms (namespaced, legacy) and both auth
schemes (API token, email + Global API Key); ``iter_items`` (namespaced only) with its filters and
lazy paging; retries, error mapping and validation as for the jobs endpoints.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_aisearch.api import ITEMS_MAX_PER_PAGE
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchError,
    AISearchNotFoundError,
    AISearchResponseError,
)
from airflow_provider_aisearch.hooks import AISearchAsyncClient, AISearchHook
from airflow_provider_aisearch.models.instances import Instance, InstanceStats, ItemStatus
from tests.conftest import Connect, MakeEmulator

ACCOUNT = "0123456789abcdef0123456789abcdef"
NS_PREFIX = f"/client/v4/accounts/{ACCOUNT}/ai-search/namespaces"
LEGACY_PREFIX = f"/client/v4/accounts/{ACCOUNT}/ai-search/instances"

#: (namespace argument, expected path prefix of the instance, route suffix)
FORMS = [
    pytest.param("default", f"{NS_PREFIX}/default/instances/docs", "", id="namespaced"),
    pytest.param(None, f"{LEGACY_PREFIX}/docs", "legacy_", id="legacy"),
]
AUTHS = [pytest.param(False, "bearer", id="token"), pytest.param(True, "global_key", id="global-key")]


def _hook(emu: AISearchEmulator, connect: Connect, *, global_key: bool = False, **kwargs: Any) -> AISearchHook:
    connect(emu, global_key=global_key)
    kwargs.setdefault("retry_backoff", 0.001)
    return AISearchHook(**kwargs)


@pytest.mark.parametrize(("global_key", "auth"), AUTHS)
@pytest.mark.parametrize(("namespace", "path", "prefix"), FORMS)
def test_get_instance_in_both_forms_and_both_auth_schemes(
    emulator: AISearchEmulator,
    connect: Connect,
    namespace: str | None,
    path: str,
    prefix: str,
    global_key: bool,
    auth: str,
) -> None:
    emulator.add_instance("site", type="web-crawler", paused=True, sync_interval=3600)
    hook = _hook(emulator, connect, global_key=global_key)
    inst = hook.get_instance("docs", namespace=namespace)
    assert inst == Instance(
        id="docs", type="r2", source="docs-bucket", namespace="default", paused=False, status="active"
    )
    site = hook.get_instance("site", namespace=namespace)
    assert (site.type, site.source, site.paused, site.sync_interval) == (
        "web-crawler",
        "https://site.example.com",
        True,
        3600,
    )
    (first, second) = emulator.requests
    assert (first.method, first.path, first.query, first.route, first.auth) == (
        "GET",
        path,
        {},
        prefix + "instance",
        auth,
    )
    assert second.path == path.replace("/docs", "/site")


@pytest.mark.parametrize(("global_key", "auth"), AUTHS)
@pytest.mark.parametrize(("namespace", "path", "prefix"), FORMS)
def test_get_instance_stats_in_both_forms_and_both_auth_schemes(
    emulator: AISearchEmulator,
    connect: Connect,
    namespace: str | None,
    path: str,
    prefix: str,
    global_key: bool,
    auth: str,
) -> None:
    emulator.add_job("docs", duration=0)  # an ended job: every item settled
    emulator.set_item_errors(0.25, instance_id="docs")
    hook = _hook(emulator, connect, global_key=global_key)
    stats = hook.get_instance_stats("docs", namespace=namespace)
    assert isinstance(stats, InstanceStats)
    assert (stats.completed, stats.error, stats.queued, stats.running, stats.skipped, stats.outdated) == (
        15,
        5,
        0,
        0,
        0,
        0,
    )
    assert stats.degraded is False
    assert stats.last_activity is not None
    assert stats.file_embed_errors is not None and sum(stats.file_embed_errors.values()) == 5
    (request,) = emulator.requests
    assert (request.method, request.path, request.route, request.auth) == (
        "GET",
        path + "/stats",
        prefix + "instance_stats",
        auth,
    )


@pytest.mark.parametrize(("global_key", "auth"), AUTHS)
def test_iter_items_namespaced_with_both_auth_schemes(
    emulator: AISearchEmulator, connect: Connect, global_key: bool, auth: str
) -> None:
    emulator.add_job("docs", duration=0)
    emulator.set_item_errors(0.1)
    hook = _hook(emulator, connect, global_key=global_key)
    failed = list(hook.iter_items("docs", status="error"))
    assert len(failed) == 2
    assert {i.status for i in failed} == {"error"}
    assert all(i.error and i.key.startswith("docs/file-") for i in failed)
    assert all(i.source_id == "r2:docs-bucket" for i in failed)
    (request,) = emulator.requests
    assert (request.path, request.route, request.auth) == (
        f"{NS_PREFIX}/default/instances/docs/items",
        "items",
        auth,
    )
    assert request.query == {"page": "1", "per_page": str(ITEMS_MAX_PER_PAGE), "status": "error"}


@pytest.mark.parametrize("global_key", [False, True], ids=["token", "global-key"])
def test_iter_items_on_the_legacy_form_raises_before_any_request(
    emulator: AISearchEmulator, connect: Connect, global_key: bool
) -> None:
    hook = _hook(emulator, connect, global_key=global_key)
    with pytest.raises(ValueError, match="^namespace must be set for the items endpoint"):
        hook.iter_items("docs", namespace=None)
    # The connection's namespace null (legacy paths for every call) is refused the same way.
    connect(emulator, namespace=None, global_key=global_key)
    with pytest.raises(ValueError, match="namespace"):
        AISearchHook().iter_items("docs")
    with pytest.raises(ValueError, match="namespace"):
        AISearchHook(namespace=None).api.items_page("docs")
    assert emulator.requests == []


def test_iter_items_pages_lazily_and_passes_every_filter(emulator: AISearchEmulator, connect: Connect) -> None:
    emulator.add_instance("big", items=25)
    emulator.add_job("big", duration=0)
    hook = _hook(emulator, connect)
    items = hook.iter_items("big", per_page=10, source="r2:big-bucket", sort_by="modified_at")
    assert emulator.requests == []  # nothing sent until iterated
    first = next(items)
    assert len(emulator.requests) == 1
    rest = list(items)
    assert len(rest) == 24
    assert len({i.id for i in [first, *rest]}) == 25
    queries = [r.query for r in emulator.requests_to(route="items")]
    assert queries == [
        {"page": str(n), "per_page": "10", "source": "r2:big-bucket", "sort_by": "modified_at"} for n in (1, 2, 3)
    ]
    # A source that matches nothing: one request, no items.
    emulator.clear_log()
    assert list(hook.iter_items("big", source="builtin")) == []
    assert len(emulator.requests) == 1


def test_iter_items_stops_on_a_short_page_without_total_count(emulator: AISearchEmulator, connect: Connect) -> None:
    emulator.add_instance("big", items=25)
    emulator.report_total_count = False
    hook = _hook(emulator, connect)
    assert len(list(hook.iter_items("big", per_page=10))) == 25
    assert [r.query["page"] for r in emulator.requests] == ["1", "2", "3"]
    emulator.clear_log()
    emulator.add_instance("even", items=20)
    assert len(list(hook.iter_items("even", per_page=10))) == 20
    assert [r.query["page"] for r in emulator.requests] == ["1", "2", "3"]  # page 3 is empty


def test_iter_items_accepts_an_item_status_member(emulator: AISearchEmulator, connect: Connect) -> None:
    hook = _hook(emulator, connect)
    assert list(hook.iter_items("docs", status=ItemStatus.SKIPPED)) == []
    assert emulator.requests[0].query["status"] == "skipped"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"status": "failed"}, "status"),
        ({"status": ""}, "status"),
        ({"sort_by": "name"}, "sort_by"),
        ({"source": ""}, "source"),
        ({"source": 3}, "source"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": ITEMS_MAX_PER_PAGE + 1}, "per_page"),
        ({"per_page": True}, "per_page"),
        ({"namespace": "Bad_NS"}, "namespace"),
    ],
)
def test_bad_item_arguments_raise_value_error_naming_them_before_any_request(
    emulator: AISearchEmulator, connect: Connect, kwargs: dict[str, Any], name: str
) -> None:
    hook = _hook(emulator, connect)
    with pytest.raises(ValueError, match=f"^{name} "):
        hook.iter_items("docs", **kwargs)
    assert emulator.requests == []


@pytest.mark.parametrize("method", ["get_instance", "get_instance_stats", "iter_items"])
@pytest.mark.parametrize(("instance_id", "name"), [("Bad Id", "instance_id"), ("", "instance_id")])
def test_bad_instance_id_raises_before_any_request(
    emulator: AISearchEmulator, connect: Connect, method: str, instance_id: str, name: str
) -> None:
    hook = _hook(emulator, connect)
    with pytest.raises(ValueError, match=f"^{name} "):
        getattr(hook, method)(instance_id)
    with pytest.raises(ValueError, match="^namespace "):
        getattr(hook, method)("docs", namespace="-bad")
    assert emulator.requests == []


# -- retries and error mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "route"),
    [
        (lambda h: h.get_instance("docs"), "instance"),
        (lambda h: h.get_instance_stats("docs"), "instance_stats"),
        (lambda h: list(h.iter_items("docs")), "items"),
    ],
    ids=["instance", "stats", "items"],
)
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda: Fault.unavailable(), id="503-7017"),
        pytest.param(lambda: Fault.http(500), id="500"),
        pytest.param(lambda: Fault.rate_limited(retry_after=0), id="429"),
        pytest.param(lambda: Fault("reset_before"), id="reset"),
    ],
)
def test_transient_failures_are_retried(
    emulator: AISearchEmulator, connect: Connect, call: Any, route: str, fault: Any
) -> None:
    hook = _hook(emulator, connect)
    emulator.inject(fault(), times=2)
    call(hook)
    sent = emulator.requests_to(route=route) or emulator.requests
    assert len(emulator.requests) == 3
    assert [r.status for r in sent][-1] == 200
    assert {r.path for r in emulator.requests} == {sent[-1].path}


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.get_instance("docs"),
        lambda h: h.get_instance_stats("docs"),
        lambda h: list(h.iter_items("docs")),
    ],
    ids=["instance", "stats", "items"],
)
def test_retries_stop_after_max_retries(emulator: AISearchEmulator, connect: Connect, call: Any) -> None:
    hook = _hook(emulator, connect, max_retries=2)
    emulator.inject(Fault.unavailable(), times=10)
    with pytest.raises(AISearchError) as caught:
        call(hook)
    assert caught.value.status_code == 503
    assert caught.value.transient is True
    assert len(emulator.requests) == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.get_instance("nope"),
        lambda h: h.get_instance_stats("nope"),
        lambda h: list(h.iter_items("nope")),
        lambda h: h.get_instance_stats("nope", namespace=None),
    ],
    ids=["instance", "stats", "items", "legacy-stats"],
)
def test_unknown_instance_is_not_found_with_code(emulator: AISearchEmulator, connect: Connect, call: Any) -> None:
    hook = _hook(emulator, connect)
    with pytest.raises(AISearchNotFoundError) as caught:
        call(hook)
    assert caught.value.status_code == 404
    assert caught.value.codes == [7002]
    assert "ai_search_not_found" in str(caught.value)
    assert len(emulator.requests) == 1  # not retried


@pytest.mark.parametrize(
    "call",
    [lambda h: h.get_instance("docs"), lambda h: h.get_instance_stats("docs"), lambda h: list(h.iter_items("docs"))],
    ids=["instance", "stats", "items"],
)
def test_a_forbidden_token_is_an_auth_error_not_retried(
    make_emulator: MakeEmulator, connect: Connect, call: Any
) -> None:
    emu = make_emulator(forbidden_tokens=["readonly-token-abc"])
    connect(emu, password="readonly-token-abc")
    with pytest.raises(AISearchAuthError) as caught:
        call(AISearchHook(retry_backoff=0.001))
    assert caught.value.status_code == 403
    assert "readonly-token-abc" not in str(caught.value)
    assert len(emu.requests) == 1


@pytest.mark.parametrize(
    ("call", "body", "what"),
    [
        (lambda h: h.get_instance("docs"), {"success": True, "result": {"type": "r2"}}, "malformed instance"),
        (lambda h: h.get_instance("docs"), {"success": True, "result": []}, "not an object"),
        (
            lambda h: h.get_instance_stats("docs"),
            {"success": True, "result": {"completed": "many"}},
            "malformed instance stats",
        ),
        (
            lambda h: list(h.iter_items("docs")),
            {"success": True, "result": [{"id": "x", "status": "error"}]},
            "malformed item",
        ),
        (lambda h: list(h.iter_items("docs")), {"success": True, "result": {}}, "not a list"),
    ],
    ids=["instance-no-id", "instance-list", "stats-count", "item-no-key", "items-object"],
)
def test_a_malformed_answer_is_a_response_error(
    emulator: AISearchEmulator, connect: Connect, call: Any, body: dict[str, Any], what: str
) -> None:
    hook = _hook(emulator, connect)
    emulator.inject(Fault.http(200, body))
    with pytest.raises(AISearchResponseError, match=what) as caught:
        call(hook)
    assert caught.value.method == "GET"
    assert caught.value.path is not None and "/instances/docs" in caught.value.path
    # Stats that break the schema can never become valid: permanent (a wait ends at once); the others transient.
    assert caught.value.transient is (what != "malformed instance stats")
    assert len(emulator.requests) == 1


def test_the_legacy_form_is_reported_as_deprecated(emulator: AISearchEmulator, connect: Connect) -> None:
    hook = _hook(emulator, connect)
    messages: list[str] = []
    hook.api.on_legacy_path = messages.append
    hook.get_instance("docs", namespace=None)
    hook.get_instance_stats("docs", namespace=None)
    hook.get_instance_stats("docs")  # namespaced: no message
    assert len(messages) == 2
    assert "/ai-search/instances/{id}/..." in messages[0]


# -- the async client --------------------------------------------------------------------------


@pytest.mark.parametrize(("global_key", "auth"), AUTHS)
@pytest.mark.parametrize(("namespace", "path", "prefix"), FORMS)
def test_async_client_gets_instance_and_stats(
    emulator: AISearchEmulator,
    connect: Connect,
    namespace: str | None,
    path: str,
    prefix: str,
    global_key: bool,
    auth: str,
) -> None:
    connect(emulator, global_key=global_key)
    emulator.add_job("docs", duration=0)
    emulator.set_item_skipped(0.5)

    async def scenario() -> tuple[Instance, InstanceStats, InstanceStats, tuple[list[Any], bool]]:
        async with AISearchAsyncClient(namespace=namespace, retry_backoff=0.001) as client:
            inst = await client.get_instance("docs")
            stats = await client.get_instance_stats("docs")
            planned = await client.run(client.api.get_instance_stats("docs"))
            page = await client.run(client.api.items_page("docs", status="skipped", namespace="default"))
            return inst, stats, planned, page

    inst, stats, planned, (items, last) = asyncio.run(scenario())
    assert (inst.id, inst.type, inst.source) == ("docs", "r2", "docs-bucket")
    assert (stats.completed, stats.skipped, stats.error) == (10, 10, 0)
    assert planned == stats
    assert last is True
    assert len(items) == 10 and {i.status for i in items} == {"skipped"}
    routes = [(r.route, r.path, r.auth) for r in emulator.requests]
    assert routes == [
        (prefix + "instance", path, auth),
        (prefix + "instance_stats", path + "/stats", auth),
        (prefix + "instance_stats", path + "/stats", auth),
        ("items", f"{NS_PREFIX}/default/instances/docs/items", auth),
    ]


def test_async_client_retries_and_maps_errors(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator)
    emulator.inject(Fault.http(502), path="/stats$", times=1)

    async def scenario() -> tuple[InstanceStats, BaseException | None, BaseException | None]:
        async with AISearchAsyncClient(retry_backoff=0.001, max_retries=2) as client:
            stats = await client.get_instance_stats("docs")
            try:
                await client.get_instance("nope")
                missing = None
            except AISearchError as exc:
                missing = exc
            try:
                client.api.items_page("docs", namespace=None)
                refused = None
            except ValueError as exc:
                refused = exc
            return stats, missing, refused

    stats, missing, refused = asyncio.run(scenario())
    assert stats.completed == 20
    assert isinstance(missing, AISearchNotFoundError)
    assert isinstance(refused, ValueError) and "namespace" in str(refused)
    assert [r.status for r in emulator.requests] == [502, 200, 404]


def test_stats_follow_a_job_through_the_hook(make_emulator: MakeEmulator, connect: Connect) -> None:
    """A job started through the API moves the items; when it has ended, in_flight is 0."""
    emu = make_emulator(job_duration=1.0)
    emu.set_item_errors(0.2)
    hook = _hook(emu, connect)
    job = hook.create_job("docs")
    deadline = time.monotonic() + 60
    while hook.get_job("docs", job.id).is_running:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stats = hook.get_instance_stats("docs")
    assert (stats.in_flight, stats.completed, stats.error) == (0, 16, 4)
    assert stats.processed == 20
