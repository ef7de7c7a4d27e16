"""The jobs endpoints: what list, create, get, cancel and logs answer, on the emulated state.

List and logs answers are paginated with ``result_info`` (``total_count`` unless switched off);
a create during the cooldown gets 429 ``sync_in_cooldown``; cancelling an ended job gets 400
``Job cannot be cancelled.``. The credentials are checked before these run (:mod:`.auth`); a path
naming another account gets 403 here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_aisearch.emulator.envelopes import (
    AUTH_ERROR,
    CANNOT_CANCEL,
    COOLDOWN,
    NO_SYNC_JOBS,
    NOT_FOUND_INSTANCE,
    NOT_FOUND_JOB,
    Reply,
    error,
    invalid,
    ok,
)
from airflow_provider_aisearch.emulator.state import Instance, JobState

__all__ = ["JobEndpoints"]


class JobEndpoints(JobState):
    """
    The jobs routes of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`.

    The emulator's constructor sets ``cooldown``; the switches below are its public attributes.
    """

    cooldown: float
    cooldown_retry_after: bool
    report_total_count: bool
    before_list_page: Callable[[int], None] | None
    account_id: str

    def _jobs_endpoint(
        self, method: str, route: str, segments: tuple[str, ...], raw_path: str, query: dict[str, str], body: Any
    ) -> Reply:
        """Answer an authenticated request to the ``jobs`` or ``legacy_jobs`` route."""
        if route == "jobs":
            account, namespace, instance_id, *tail = segments
        else:
            account, instance_id, *tail = segments
            namespace = "default"
        if account != self.account_id:
            return error(403, AUTH_ERROR)
        job_id = tail[0] if tail else None
        logs = raw_path.endswith("/logs") and job_id is not None
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                return error(404, NOT_FOUND_INSTANCE)
            if job_id is None:
                if method == "GET":
                    return self._list(inst, query, max_per_page=50)
                if method == "POST":
                    if inst.type is None:  # built-in storage: "There are no sync jobs" (the answer is our choice)
                        return error(400, NO_SYNC_JOBS)
                    return self._create(inst, body)
                return error(405, {"code": 10405, "message": "Method not allowed"})
            job = next((j for j in inst.jobs if j.id == job_id), None)
            if job is None:
                return error(404, NOT_FOUND_JOB)
            if logs:
                if method != "GET":
                    return error(405, {"code": 10405, "message": "Method not allowed"})
                return self._paginate(self._logs_json(job), query, max_per_page=500)
            if method == "GET":
                return ok(self._job_json(job))
            if method == "PATCH":
                if not isinstance(body, dict) or body.get("action") != "cancel":
                    return error(400, invalid("action must be 'cancel'", "action"))
                job.settle(self.clock())
                if job.ended_at is not None:
                    return error(400, CANNOT_CANCEL)
                job.end(self.clock(), "cancelled")
                return ok(self._job_json(job))
            return error(405, {"code": 10405, "message": "Method not allowed"})

    def _paginate(
        self,
        items: list[Any],
        query: dict[str, str],
        *,
        max_per_page: int,
        render: Callable[[Any], Any] | None = None,
    ) -> Reply:
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "20"))
        except ValueError:
            return error(400, invalid("page and per_page must be numbers", "page"))
        if page < 1:
            return error(400, invalid("page must be >= 1", "page"))
        if not 0 <= per_page <= max_per_page:
            return error(400, invalid(f"per_page must be 0-{max_per_page}", "per_page"))
        per_page = per_page or 20
        chunk = items[(page - 1) * per_page : page * per_page]
        chunk = [render(item) for item in chunk] if render is not None else chunk
        info: dict[str, int] = {"count": len(chunk), "page": page, "per_page": per_page}
        if self.report_total_count:
            info["total_count"] = len(items)
        return ok(chunk, result_info=info)

    def _list(self, inst: Instance, query: dict[str, str], *, max_per_page: int) -> Reply:
        if self.before_list_page is not None:
            try:
                page = int(query.get("page", "1"))
            except ValueError:
                page = 0
            self.before_list_page(page)
        # Only the page is rendered, so listing stays cheap for large instances.
        return self._paginate(self._ordered(inst), query, max_per_page=max_per_page, render=self._job_json)

    def _create(self, inst: Instance, body: Any) -> Reply:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return error(400, invalid("body must be a JSON object"))
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            return error(400, invalid("description must be a string of at most 255 characters", "description"))
        now = self.clock()
        latest = max((j.started_at for j in inst.jobs), default=None)
        if latest is not None and now - latest < self.cooldown:
            left = self.cooldown - (now - latest)
            headers = {"Retry-After": str(max(1, int(left + 0.999)))} if self.cooldown_retry_after else {}
            return 429, {"success": False, "errors": [COOLDOWN], "result": {}}, headers
        duration, end_reason = self._planned.pop(0) if self._planned else (None, self.end_reason)
        job = self._start(inst, "user", description, duration, end_reason)
        return ok(self._job_json(job))
