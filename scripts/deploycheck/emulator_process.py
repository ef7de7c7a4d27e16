"""The emulator process of ``make deploy-check``: started on a free port, driven through its control channel.

:func:`start_emulator` runs ``python -m airflow_provider_aisearch.emulator --control`` as a child of
:class:`~deploycheck.services.Processes` and reads the connection it prints (:data:`CONN_LINE`).
:class:`Emulator` is that process: its request log, instances, jobs, rate limit, settings and token revocation, through
the JSON endpoints under ``/_emulator/`` (bearer = the API token; not in the request log, not rate limited).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Required, TypedDict, Unpack
from urllib.parse import urlencode

from deploycheck.services import DeployCheckFailed, Processes, alive, free_port, wait_until

CONN_LINE = re.compile(r"^export AIRFLOW_CONN_AISEARCH_DEFAULT='(.*)'$", re.MULTILINE)


class JobSpec(TypedDict, total=False):
    """A job made through the control channel: the keyword arguments of :meth:`Emulator.add_jobs` and ``start_job``."""

    #: Its instance (required).
    instance: Required[str]
    #: Its namespace (default ``default``).
    namespace: str
    #: Seconds it runs (required; ``0``: it has ended already).
    duration: Required[float]
    #: How it ends (default ``completed``; ``None``: it runs until ended through the control channel).
    end_reason: str | None
    #: Who started it (default ``user``).
    source: str
    #: Its description (default none).
    description: str | None


def _job_body(job: JobSpec) -> dict[str, Any]:
    """The control request's fields for ``job``, defaults filled in."""
    return {
        "instance": job["instance"],
        "namespace": job.get("namespace", "default"),
        "duration": job["duration"],
        "end_reason": job.get("end_reason", "completed"),
        "source": job.get("source", "user"),
        "description": job.get("description"),
    }


@dataclass
class Emulator:
    """The emulator process, read and driven through its control channel (``--control``)."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    connection: str
    token: str
    url: str = ""

    def control(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """One control request (``/_emulator/<path>``); the ``result`` of its answer."""
        root = self.url.split("/client/v4")[0]
        target = f"{root}/_emulator/{path}" + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(target, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise DeployCheckFailed(f"emulator control {method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from exc
        return answer["result"]

    def requests_since(self, seq: int = 0) -> tuple[list[dict[str, Any]], int]:
        """API requests served from sequence number ``seq`` on, and the next sequence number."""
        result = self.control("GET", "requests", query={"after": seq})
        return list(result["requests"]), int(result["next"])

    def add_instance(
        self,
        instance: str,
        namespace: str = "default",
        documents: dict[str, str] | None = None,
        *,
        builtin: bool = False,
    ) -> None:
        """
        Create an instance (and its namespace); with ``documents`` (``{key: text}``), its items are those.

        :param builtin: Built-in storage (``type`` absent), with no items: files arrive by upload only.
        """
        body: dict[str, Any] = {"instance": instance, "namespace": namespace}
        if documents is not None:
            body["documents"] = documents
        if builtin:
            body.update(type=None, items=0)
        self.control("POST", "instances", body)

    def add_jobs(self, count: int, **job: Unpack[JobSpec]) -> list[dict[str, Any]]:
        """
        Running jobs side by side (no supersede, no cooldown).

        :param count: How many.
        :param job: The jobs' :class:`JobSpec`.
        """
        return list(self.control("POST", "jobs", {**_job_body(job), "count": count}))

    def start_job(self, **job: Unpack[JobSpec]) -> dict[str, Any]:
        """
        Start a job as Cloudflare does: every running job of the instance ends ``new_job_has_started``.

        :param job: The job's :class:`JobSpec`.
        """
        return dict(self.control("POST", "jobs", {**_job_body(job), "supersede": True})[0])

    def end_jobs(
        self, job_ids: list[str] | None, *, instance: str, namespace: str = "default", end_reason: str = "completed"
    ) -> list[str]:
        """End running jobs now (``None``: every running job of the instance); the ids ended."""
        body = {"instance": instance, "namespace": namespace, "job_ids": job_ids, "end_reason": end_reason}
        return list(self.control("POST", "jobs/end", body))

    def all_jobs(self, *, instance: str, namespace: str = "default") -> list[dict[str, Any]]:
        """Every job of the instance (running ones too), newest first."""
        return list(self.control("GET", "jobs", query={"instance": instance, "namespace": namespace}))

    def set_rate_limit(self, limit: int | None, window: float = 10.0) -> None:
        """``limit`` requests per ``window`` s, then 429 (971) for ``window`` s; ``None`` turns it off."""
        self.control("PUT", "rate-limit", {"limit": limit, "window": window})

    def set_token_revoked(self, revoked: bool) -> None:
        """Revoke the API token (every API request with it gets 401) or restore it; control requests still work."""
        self.control("PUT", "token", {"revoked": revoked})

    def configure(self, *, job_duration: float | None = None, cooldown: float | None = None) -> None:
        """Duration and create cooldown for jobs created through the API from now on."""
        self.control("PUT", "settings", {"job_duration": job_duration, "cooldown": cooldown})

    def request_counts(self) -> Counter[str]:
        """Requests served so far, by ``METHOD route`` (job ids folded into ``{id}``)."""
        counts: Counter[str] = Counter()
        for record in self.requests_since(0)[0]:
            path = re.sub(r"/jobs/[^/]+", "/jobs/{id}", record["path"])
            path = re.sub(r"/accounts/[^/]+", "/accounts/{account}", path)
            counts[f"{record['method']} {path}"] += 1
        return counts


def start_emulator(procs: Processes, python: str, env: dict[str, str], token: str) -> Emulator:
    """``python -m airflow_provider_aisearch.emulator`` on a free port, access lines on."""
    port = free_port()
    argv = [
        python,
        "-m",
        "airflow_provider_aisearch.emulator",
        "--port",
        str(port),
        f"--token={token}",
    ]  # a token may start with "-"
    # Short jobs and a short create cooldown so the example DAGs, run one after another, can each start a job.
    argv += ["--instance", "docs", "--seed-jobs", "5", "--job-duration", "3", "--cooldown", "5"]
    argv += ["--verbose", "--control"]
    proc = procs.start("emulator", argv, {**env, "PYTHONUNBUFFERED": "1"}, tier=0)
    log_path = procs.get("emulator").log_path
    found: list[str] = []

    def printed_connection() -> bool:
        alive(proc, "emulator")
        match = CONN_LINE.search(log_path.read_text(errors="replace"))
        if match:
            found.append(match.group(1))
        return bool(found)

    wait_until("emulator printing its connection", printed_connection, 60)
    return Emulator(proc, log_path, found[0], token, json.loads(found[0])["host"])
