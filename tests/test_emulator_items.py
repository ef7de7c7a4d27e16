"""The emulator's instances, stats and items: a job moves items queued -> running -> settled; error and
skipped shares, ``degraded``, lag after the job; the routes' errors, auth, rate limit and faults; the
control channel and the command line. Over real HTTP (the hook, or raw requests for what it refuses to send)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Chaos, Fault, RateLimit
from airflow_provider_aisearch.emulator.items import EMBED_ERRORS, PDF_ERROR
from airflow_provider_aisearch.exceptions import AISearchResponseError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.instances import InstanceStats
from tests.conftest import EMAIL, GLOBAL_KEY, TOKEN, Connect, MakeEmulator

ACCOUNT = "0123456789abcdef0123456789abcdef"
START = 1_790_000_000.0


class Clock:
    """A settable clock for the emulator (epoch seconds)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def raw_get(emu: AISearchEmulator, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET ``emu.url + path`` with the token; the status and the JSON body."""
    if headers is None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(emu.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def control(emu: AISearchEmulator, method: str, route: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{emu.host}:{emu.port}/_emulator/{route}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(make_emulator: MakeEmulator, connect: Connect, clock: Clock) -> AISearchEmulator:
    """An emulator on a settable clock, registered as the default connection."""
    emu = make_emulator(clock=clock, job_duration=100.0)
    connect(emu)
    return emu


def counts(stats: InstanceStats) -> dict[str, Any]:
    return {k: v for k, v in stats.to_dict().items() if k not in ("last_activity", "degraded")}


# -- the lifecycle ------------------------------------------------------------------------------


def test_a_job_moves_items_queued_running_settled(timed: AISearchEmulator, clock: Clock) -> None:
    hook = AISearchHook()
    before = hook.get_instance_stats("docs")
    assert counts(before) == {"completed": 20, "queued": 0, "running": 0, "error": 0, "skipped": 0, "outdated": 0}
    assert before.last_activity is None  # no job has run
    timed.set_item_errors(0.1)
    timed.set_item_skipped(0.05)
    job = hook.create_job("docs")
    start = hook.get_instance_stats("docs")
    assert (start.queued, start.running, start.completed) == (19, 1, 0)
    assert [i.next_action for i in hook.iter_items("docs", status="queued")] == ["INDEX"] * 19
    clock.now += 50.0  # half way: ten items settled, one running
    half = hook.get_instance_stats("docs")
    assert half.in_flight == 10
    assert half.running == 1
    assert half.processed == 10
    clock.now += 50.0  # the job's planned end: it has ended, every item settled
    assert not hook.get_job("docs", job.id).is_running
    end = hook.get_instance_stats("docs")
    assert counts(end) == {"completed": 17, "queued": 0, "running": 0, "error": 2, "skipped": 1, "outdated": 0}
    assert end.last_activity is not None and end.last_activity.timestamp() == pytest.approx(START + 100, abs=1)
    assert end.file_embed_errors is not None and sum(end.file_embed_errors.values()) == 2
    statuses = {i.status for i in hook.iter_items("docs")}
    assert statuses == {"completed", "error", "skipped"}


def test_a_job_cancelled_early_settles_its_items_when_it_ends(timed: AISearchEmulator, clock: Clock) -> None:
    hook = AISearchHook()
    job = hook.create_job("docs")
    clock.now += 10.0
    assert hook.get_instance_stats("docs").in_flight == 18
    hook.cancel_job("docs", job.id)
    assert hook.get_instance_stats("docs").in_flight == 0


def test_a_new_job_moves_the_items_again(timed: AISearchEmulator, clock: Clock) -> None:
    hook = AISearchHook()
    timed.add_job("docs", duration=0)
    assert hook.get_instance_stats("docs").in_flight == 0
    clock.now += 60.0
    timed.start_job("docs", duration=20.0)
    assert hook.get_instance_stats("docs").queued == 19


def test_the_error_share_is_exact_with_realistic_messages(timed: AISearchEmulator) -> None:
    timed.add_instance("many", items=40)
    timed.add_job("many", duration=0)
    timed.set_item_errors(0.25, instance_id="many")
    hook = AISearchHook()
    failed = list(hook.iter_items("many", status="error"))
    assert len(failed) == 10
    for item in failed:
        expected = PDF_ERROR if item.key.endswith(".pdf") else None
        assert item.error == expected or item.error in EMBED_ERRORS
    assert hook.get_instance_stats("many").error == 10
    assert hook.get_instance_stats("docs").error == 0  # only that instance
    # The emulator-wide share applies to instances without their own.
    timed.set_item_errors(0.5)
    assert hook.get_instance_stats("docs").error == 10
    assert hook.get_instance_stats("many").error == 10
    # Which items fail depends on the job.
    job_a = {i.key for i in failed}
    timed.start_job("many", duration=0)
    job_b = {i.key for i in hook.iter_items("many", status="error")}
    assert len(job_b) == 10 and job_b != job_a


def test_degraded_stats_have_no_counts(timed: AISearchEmulator) -> None:
    hook = AISearchHook()
    timed.add_job("docs", duration=0)
    timed.set_degraded(True, instance_id="docs")
    stats = hook.get_instance_stats("docs")
    assert stats.degraded is True
    assert stats.in_flight is None and stats.completed is None
    assert stats.last_activity is not None
    status, body = raw_get(timed, f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs/stats")
    assert status == 200 and set(body["result"]) == {"degraded", "last_activity"}
    assert len(list(hook.iter_items("docs"))) == 20  # the items list still answers
    timed.set_degraded(False, instance_id="docs")
    assert hook.get_instance_stats("docs").degraded is False
    timed.add_instance("other")
    timed.set_degraded(True)  # emulator-wide: every instance without its own setting
    assert hook.get_instance_stats("other", namespace=None).degraded is True
    assert hook.get_instance_stats("docs").degraded is False


def test_stats_fields_can_be_left_out_or_sent_as_given(emulator: AISearchEmulator, connect: Connect) -> None:
    """Every stats field is optional in Cloudflare's schema: the emulator serves such answers, and malformed ones."""
    connect(emulator)
    emulator.set_stats_fields(omit=["queued", "running"], replace={"error": None}, instance_id="docs")
    path = f"/accounts/{emulator.account_id}/ai-search/namespaces/default/instances/docs/stats"
    status, body = raw_get(emulator, path)
    assert status == 200 and "queued" not in body["result"] and "running" not in body["result"]
    assert body["result"]["error"] is None and body["result"]["completed"] == 20
    stats = AISearchHook().get_instance_stats("docs")
    assert (stats.queued, stats.running, stats.error, stats.degraded) == (0, 0, 0, False)  # absent or null: 0
    emulator.set_stats_fields(replace={"queued": -1})  # emulator-wide; "docs" keeps its own
    assert raw_get(emulator, path)[1]["result"]["error"] is None
    emulator.set_stats_fields(instance_id="docs")  # nothing left out or replaced: as computed again
    assert raw_get(emulator, path)[1]["result"]["queued"] == -1
    emulator.set_stats_fields()
    assert raw_get(emulator, path)[1]["result"]["queued"] == 0
    emulator.set_degraded(True)
    emulator.set_stats_fields(omit=["degraded"])  # no count and no flag at all
    assert set(raw_get(emulator, path)[1]["result"]) <= {"last_activity"}
    with pytest.raises(ValueError, match="stats fields"):
        emulator.set_stats_fields(omit=["queue"])
    with pytest.raises(ValueError, match="stats fields"):
        emulator.set_stats_fields(replace={"engine": {}})
    with pytest.raises(ValueError, match="omit"):
        emulator.set_stats_fields(omit="queued")
    with pytest.raises(TypeError):
        emulator.set_stats_fields(replace={"queued": object()})


def test_item_lag_keeps_items_in_flight_after_the_job_ends(timed: AISearchEmulator, clock: Clock) -> None:
    hook = AISearchHook()
    timed.set_item_lag(30.0, instance_id="docs")
    job = hook.create_job("docs")
    clock.now += 100.0
    assert not hook.get_job("docs", job.id).is_running
    ended = hook.get_instance_stats("docs")
    assert ended.in_flight is not None and ended.in_flight > 0
    clock.now += 29.0
    assert hook.get_instance_stats("docs").in_flight == 1
    clock.now += 1.0
    assert hook.get_instance_stats("docs").in_flight == 0


def test_settings_are_validated(emulator: AISearchEmulator) -> None:
    for bad in (-0.1, 1.5, True, "0.2"):
        with pytest.raises(ValueError, match="share"):
            emulator.set_item_errors(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="share"):
            emulator.set_item_skipped(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        emulator.set_item_lag(-1)
    with pytest.raises(ValueError, match="flag"):
        emulator.set_degraded(1)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        emulator.set_item_errors(0.1, instance_id="nope")
    with pytest.raises(ValueError, match="type"):
        emulator.add_instance("x", type="s3")
    with pytest.raises(ValueError, match="items"):
        emulator.add_instance("x", items=-1)


# -- instances -------------------------------------------------------------------------------


def test_instances_report_their_source(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator)
    emulator.add_instance("site", type="web-crawler", items=3, sync_interval=900)
    emulator.add_instance("uploads", type=None)
    emulator.add_instance("named", source="my-bucket", namespace="team", paused=True)
    hook = AISearchHook()
    site = hook.get_instance("site")
    assert (site.type, site.source, site.sync_interval, site.paused) == (
        "web-crawler",
        "https://site.example.com",
        900,
        False,
    )
    assert [i.key for i in hook.iter_items("site", sort_by="status")] == [
        f"https://site.example.com/page-000{n}" for n in (1, 2, 3)
    ]
    assert {i.source_id for i in hook.iter_items("site")} == {"web-crawler:https://site.example.com"}
    uploads = hook.get_instance("uploads")
    assert (uploads.type, uploads.source) == (None, None)
    assert {i.source_id for i in hook.iter_items("uploads")} == {"builtin"}
    named = hook.get_instance("named", namespace="team")
    assert (named.source, named.namespace, named.paused) == ("my-bucket", "team", True)
    # The full answer carries the SDK's required fields.
    status, body = raw_get(emulator, f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs")
    assert status == 200
    assert {"id", "created_at", "modified_at", "type", "source", "paused", "status", "sync_interval"} <= set(
        body["result"]
    )
    # Adding it again leaves it as it is.
    emulator.add_instance("site", type="r2")
    assert hook.get_instance("site").type == "web-crawler"


def test_items_have_the_sdk_fields_and_sort_orders(emulator: AISearchEmulator, clock: Clock) -> None:
    emulator.clock = clock
    emulator.start_job("docs", duration=100.0)
    clock.now += 30.0
    status, body = raw_get(emulator, f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs/items")
    assert status == 200
    assert body["result_info"] == {"count": 20, "page": 1, "per_page": 20, "total_count": 20}
    required = {"id", "checksum", "created_at", "key", "last_seen_at", "namespace", "status"}
    assert all(required <= set(item) for item in body["result"])
    # "status" (the default): status priority (running before queued before completed).
    order = [item["status"] for item in body["result"]]
    assert order == ["running"] + ["queued"] * 13 + ["completed"] * 6
    status, body = raw_get(
        emulator, f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs/items?sort_by=modified_at"
    )
    seen = [item["last_seen_at"] for item in body["result"]]
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=failed", "status"), ("sort_by=name", "sort_by"), ("per_page=101", "per_page"), ("page=0", "page")],
)
def test_bad_item_queries_get_400_naming_the_field(emulator: AISearchEmulator, query: str, field: str) -> None:
    status, body = raw_get(emulator, f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs/items?{query}")
    assert status == 400
    assert body["errors"][0]["code"] == 7001
    assert body["errors"][0]["path"] == [field]


def test_route_errors_match_the_jobs_routes(emulator: AISearchEmulator) -> None:
    base = f"/accounts/{ACCOUNT}/ai-search"
    # No legacy items path, as on Cloudflare.
    assert raw_get(emulator, f"{base}/instances/docs/items")[1]["errors"][0]["code"] == 7003
    assert raw_get(emulator, f"{base}/namespaces/default/instances/nope/stats")[0] == 404
    assert raw_get(emulator, f"{base}/namespaces/default/instances/nope/stats")[1]["errors"][0]["code"] == 7002
    assert raw_get(emulator, f"{base}/namespaces/other/instances/docs")[0] == 404
    assert raw_get(emulator, f"/accounts/{'f' * 32}/ai-search/instances/docs/stats")[0] == 403
    assert raw_get(emulator, f"{base}/instances/docs", headers={})[0] == 401
    assert raw_get(emulator, f"{base}/instances/docs", headers={"Authorization": "Bearer wrong"})[0] == 401
    key_headers = {"X-Auth-Email": EMAIL, "X-Auth-Key": GLOBAL_KEY}
    assert raw_get(emulator, f"{base}/namespaces/default/instances/docs/items", headers=key_headers)[0] == 200
    assert raw_get(emulator, f"{base}/instances/docs", headers={**key_headers, "X-Auth-Key": "nope"})[0] == 403
    routes = [r.route for r in emulator.requests]
    assert routes == [
        None,
        "instance_stats",
        "instance_stats",
        "instance",
        "legacy_instance_stats",
        "legacy_instance",
        "legacy_instance",
        "items",
        "legacy_instance",
    ]
    assert [r.auth for r in emulator.requests][-3:] == ["bearer", "global_key", "global_key"]


def test_post_to_an_instance_route_is_405(emulator: AISearchEmulator) -> None:
    request = urllib.request.Request(
        emulator.url + f"/accounts/{ACCOUNT}/ai-search/instances/docs/stats",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 405


def test_rate_limit_and_chaos_apply_to_the_new_routes(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator)
    emulator.rate_limit = RateLimit(limit=2, window=600.0, lockout=600.0)
    base = f"/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs"
    assert raw_get(emulator, base)[0] == 200
    assert raw_get(emulator, base + "/stats")[0] == 200
    status, body = raw_get(emulator, base + "/items")
    assert (status, body["errors"][0]["code"]) == (429, 971)
    assert [r.fault for r in emulator.requests] == [None, None, "rate_limit"]
    emulator.rate_limit = None
    emulator.clear_log()
    emulator.chaos = Chaos(rate=1.0, kinds={"503": 1.0}, routes=frozenset({"instance_stats"}), seed=1)
    hook = AISearchHook(max_retries=0)
    hook.get_instance("docs")  # not a chaos route
    with pytest.raises(Exception):  # noqa: B017 - any injected failure
        hook.get_instance_stats("docs")
    assert emulator.requests[0].fault is None
    assert emulator.requests[1].path.endswith("/docs/stats")
    assert (emulator.requests[1].fault, emulator.requests[1].status) == ("status", 503)
    emulator.chaos = None
    emulator.clear_log()
    emulator.inject(Fault.http(503), path="/items$")
    assert len(list(AISearchHook(retry_backoff=0.001).iter_items("docs"))) == 20
    assert [(r.path.rsplit("/", 1)[-1], r.status) for r in emulator.requests] == [("items", 503), ("items", 200)]


# -- the control channel and the command line -----------------------------------------------------


def test_control_channel_adds_instances_and_sets_item_errors(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(control=True)
    connect(emu)
    status, _ = control(
        emu,
        "POST",
        "instances",
        {
            "instance": "site",
            "type": "web-crawler",
            "source": "https://docs.example.org",
            "items": 10,
            "paused": True,
            "sync_interval": 3600,
        },
    )
    assert status == 200
    hook = AISearchHook()
    site = hook.get_instance("site")
    assert (site.type, site.source, site.paused, site.sync_interval) == (
        "web-crawler",
        "https://docs.example.org",
        True,
        3600,
    )
    assert control(emu, "PUT", "items", {"instance": "site", "error_share": 0.3, "skipped_share": 0.1})[0] == 200
    stats = hook.get_instance_stats("site")
    assert (stats.error, stats.skipped, stats.completed) == (3, 1, 6)
    assert control(emu, "PUT", "items", {"degraded": True})[0] == 200
    assert hook.get_instance_stats("docs").degraded is True
    assert control(emu, "PUT", "items", {"degraded": False, "lag": 5})[0] == 200
    assert emu.item_lag == 5.0
    body = {"instance": "site", "stats_omit": ["queued"], "stats_replace": {"error": "3"}}
    assert control(emu, "PUT", "items", body)[0] == 200
    with pytest.raises(AISearchResponseError, match="'error'") as malformed:
        hook.get_instance_stats("site")
    assert malformed.value.transient is False
    assert control(emu, "PUT", "items", {"instance": "site", "stats_omit": [], "stats_replace": {}})[0] == 200
    assert hook.get_instance_stats("site").error == 3
    assert control(emu, "PUT", "items", {"stats_omit": ["nope"]})[0] == 400
    status, body = control(emu, "GET", "items?instance=site")
    assert status == 200 and len(body["result"]) == 10
    assert control(emu, "PUT", "items", {"error_share": 2})[0] == 400
    assert control(emu, "PUT", "items", {"instance": "nope", "error_share": 0.1})[0] == 404
    assert control(emu, "POST", "instances", {"instance": "bad", "type": "s3"})[0] == 400
    # Control requests stay out of the request log.
    assert {r.route for r in emu.requests} == {"instance", "instance_stats"}


def test_the_command_line_offers_item_error_share() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_aisearch.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "--item-error-share" in out
    assert "default 0" in out


def test_the_command_line_item_error_share_reaches_the_stats(tmp_path: Any) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_aisearch.emulator",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--item-error-share",
            "0.2",
            "--items",
            "10",
            "--seed-jobs",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        request = urllib.request.Request(
            f"{url}/accounts/{ACCOUNT}/ai-search/namespaces/default/instances/docs/stats",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result = json.loads(answer.read())["result"]
        assert (result["error"], result["completed"]) == (2, 8)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
