"""The emulator's control channel (``control=True`` / ``--control``), over real HTTP on loopback.

The deploy check drives an emulator process through it: it reads the request log (with each
client's source port), adds instances and running jobs, supersedes and ends jobs, and sets the rate
limit. Control requests must stay out of the request log and the rate limit, and need the token.
"""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_aisearch.emulator import AISearchEmulator


def _control(emu: AISearchEmulator, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
    root = emu.url.split("/client/v4")[0]
    headers = {"Authorization": f"Bearer {emu.token}"}
    return requests.request(method, f"{root}/_emulator/{path}", json=body, params=params, headers=headers, timeout=10)


def _list(emu: AISearchEmulator, instance: str = "docs") -> requests.Response:
    url = f"{emu.url}/accounts/{emu.account_id}/ai-search/namespaces/default/instances/{instance}/jobs"
    return requests.get(url, headers={"Authorization": f"Bearer {emu.token}"}, timeout=10)


def test_control_is_off_by_default() -> None:
    with AISearchEmulator() as emu:
        answer = _control(emu, "GET", "requests")
        assert answer.status_code == 404
        assert emu.requests and emu.requests[0].route is None  # an ordinary unknown path, logged as such


def test_control_needs_the_token() -> None:
    with AISearchEmulator(control=True) as emu:
        root = emu.url.split("/client/v4")[0]
        answer = requests.get(f"{root}/_emulator/requests", headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert answer.status_code == 401
        assert emu.token not in answer.text


def test_request_log_carries_source_ports_and_leaves_control_out() -> None:
    with AISearchEmulator(control=True) as emu:
        with requests.Session() as one, requests.Session() as two:
            headers = {"Authorization": f"Bearer {emu.token}"}
            url = f"{emu.url}/accounts/{emu.account_id}/ai-search/namespaces/default/instances/docs/jobs"
            assert one.get(url, headers=headers, timeout=10).status_code == 200
            assert two.get(url, headers=headers, timeout=10).status_code == 200
            assert one.get(url, headers=headers, timeout=10).status_code == 200
        result = _control(emu, "GET", "requests").json()["result"]
        records = result["requests"]
        assert [r["status"] for r in records] == [200, 200, 200]
        ports = [r["peer_port"] for r in records]
        assert ports[0] == ports[2] != ports[1] and all(p > 0 for p in ports)  # one port per client connection
        assert result["next"] == 3 and len(emu.requests) == 3  # control requests are not logged
        later = _control(emu, "GET", "requests", after=2).json()["result"]
        assert [r["seq"] for r in later["requests"]] == [2]


def test_jobs_added_side_by_side_superseded_and_ended() -> None:
    with AISearchEmulator(control=True, instances=[]) as emu:
        assert _control(emu, "POST", "instances", {"instance": "shared"}).status_code == 200
        added = _control(emu, "POST", "jobs", {"instance": "shared", "count": 3, "duration": 600}).json()["result"]
        assert len(added) == 3 and all(j["ended_at"] is None for j in added)
        ended = _control(emu, "POST", "jobs/end", {"instance": "shared", "job_ids": [added[0]["id"]]}).json()
        assert ended["result"] == [added[0]["id"]]
        body = {"instance": "shared", "duration": 600, "supersede": True, "description": "x"}
        newest = _control(emu, "POST", "jobs", body).json()["result"][0]
        jobs = {j["id"]: j for j in _control(emu, "GET", "jobs", instance="shared").json()["result"]}
        assert jobs[added[0]["id"]]["end_reason"] == "completed"
        assert [jobs[j["id"]]["end_reason"] for j in added[1:]] == ["new_job_has_started"] * 2
        assert jobs[newest["id"]]["ended_at"] is None and jobs[newest["id"]]["description"] == "x"
        assert _list(emu, "shared").json()["result_info"]["total_count"] == 4
        missing = _control(emu, "POST", "jobs/end", {"instance": "nope"})
        assert missing.status_code == 404


def test_a_job_ended_with_a_future_ended_at() -> None:
    """An API clock glitch: the job is listed as ended at once, with an ended_at two hours ahead."""
    with AISearchEmulator(control=True) as emu:
        (job,) = _control(emu, "POST", "jobs", {"instance": "docs", "duration": 600}).json()["result"]
        ahead = emu.clock() + 7200
        body = {"instance": "docs", "job_ids": [job["id"]], "ended_at": ahead}
        assert _control(emu, "POST", "jobs/end", body).json()["result"] == [job["id"]]
        (listed,) = _list(emu).json()["result"]
        assert listed["ended_at"] == emu._ts(ahead) and listed["end_reason"] == "completed"
        assert _control(emu, "POST", "jobs/end", {**body, "ended_at": "later"}).status_code == 400


def test_rate_limit_and_settings() -> None:
    with AISearchEmulator(control=True) as emu:
        assert _control(emu, "PUT", "rate-limit", {"limit": 2, "window": 60}).status_code == 200
        assert [_list(emu).status_code for _ in range(3)] == [200, 200, 429]
        assert _control(emu, "GET", "requests").status_code == 200  # control is never rate limited
        assert _control(emu, "PUT", "rate-limit", {"limit": None}).status_code == 200
        assert _list(emu).status_code == 200
        assert _control(emu, "PUT", "settings", {"job_duration": 42, "cooldown": 1}).status_code == 200
        assert (emu.job_duration, emu.cooldown) == (42.0, 1.0)
        bad = _control(emu, "PUT", "settings", {"job_duration": "soon"})
        assert bad.status_code == 400


def test_revoking_the_token_answers_401_until_restored() -> None:
    with AISearchEmulator(control=True, email="ops@example.com", global_key="gk-1") as emu:
        assert _list(emu).status_code == 200
        assert _control(emu, "PUT", "token", {"revoked": True}).json()["result"] == {"revoked": True}
        revoked = _list(emu)
        assert revoked.status_code == 401
        assert revoked.json()["errors"][0]["code"] == 10000
        root = f"{emu.url}/accounts/{emu.account_id}/tokens/verify"
        assert requests.get(root, headers={"Authorization": f"Bearer {emu.token}"}, timeout=10).status_code == 401
        url = f"{emu.url}/accounts/{emu.account_id}/ai-search/namespaces/default/instances/docs/jobs"
        other = {"X-Auth-Email": "ops@example.com", "X-Auth-Key": "gk-1"}
        assert requests.get(url, headers=other, timeout=10).status_code == 200  # only the token is revoked
        assert _control(emu, "GET", "requests").status_code == 200  # the control channel still takes it
        assert _control(emu, "PUT", "token", {"revoked": "yes"}).status_code == 400
        assert _control(emu, "PUT", "token", {"revoked": False}).status_code == 200
        assert _list(emu).status_code == 200
        assert [r.status for r in emu.requests] == [200, 401, 401, 200, 200]


def test_control_adds_an_instance_holding_documents() -> None:
    """The deploy check gives the retrieval check example its corpus this way: the documents are the items."""
    with AISearchEmulator(control=True) as emu:
        documents = {"guides/tokens.md": "Create an API token in the dashboard.", "faq.md": "Billing questions."}
        body = {"instance": "corpus", "documents": documents}
        assert _control(emu, "POST", "instances", body).status_code == 200
        items = _control(emu, "GET", "items", instance="corpus").json()["result"]
        assert sorted(item["key"] for item in items) == sorted(documents)
        url = f"{emu.url}/accounts/{emu.account_id}/ai-search/namespaces/default/instances/corpus/search"
        answer = requests.post(url, json={"query": "api token"}, headers={"Authorization": f"Bearer {emu.token}"})
        assert [chunk["item"]["key"] for chunk in answer.json()["result"]["chunks"]] == ["guides/tokens.md"]
