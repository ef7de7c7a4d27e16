"""The emulator's control channel: drive a running emulator process from another process.

Off unless ``control=True`` (``--control`` on the command line). It serves JSON under
``/_emulator/`` (outside Cloudflare's ``/client/v4``), with the emulator's API token as bearer.
Control requests are neither recorded in the request log nor counted by the rate limit, so what a
check reads back is only what the clients under test sent.

- ``GET /_emulator/requests?after=N``: the request log from sequence number ``N`` on (header values
  never included): ``{"requests": [...], "next": M}``.
- ``POST /_emulator/instances`` ``{"namespace", "instance", "type", "source", "paused", "sync_interval",
  "items", "documents"}``: add an instance (all but ``instance`` optional, as for :meth:`add_instance`;
  ``documents``: ``{key: text}``, the instance's items are these documents, searchable).
- ``PUT /_emulator/items`` ``{"namespace", "instance", "error_share", "skipped_share", "degraded", "lag",
  "stats_omit", "stats_replace"}``: item settings (each optional; ``instance`` null or absent: every
  instance without its own, see :mod:`.items`; ``stats_omit``/``stats_replace``: :meth:`set_stats_fields`).
- ``GET /_emulator/items?namespace=&instance=``: the instance's items now, as the items list renders them.
- ``POST /_emulator/jobs`` ``{"namespace", "instance", "count", "duration", "end_reason", "source",
  "description", "supersede"}``: add running jobs side by side, or (``supersede``) start one as
  Cloudflare does, ending the running ones with ``new_job_has_started``.
- ``POST /_emulator/jobs/end`` ``{"namespace", "instance", "job_ids", "end_reason", "ended_at"}``: end
  running jobs now (``job_ids`` null: all of the instance's), listed with ``ended_at`` (epoch seconds,
  may lie in the future; default: now).
- ``GET /_emulator/jobs?namespace=&instance=``: every job of the instance, newest first.
- ``PUT /_emulator/rate-limit`` ``{"limit", "window"}``: set the rate limit (``limit`` null: off).
- ``PUT /_emulator/settings`` ``{"job_duration", "cooldown", "upload_duration", "timestamp_format",
  "log_time_unit"}``: for jobs and uploads
  created through the API, and how every answer renders timestamps (each optional).
- ``PUT /_emulator/token`` ``{"revoked"}``: revoke the API token (every API request with it gets 401)
  or restore it; the control channel keeps taking it.
"""

from __future__ import annotations

import hmac
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from airflow_provider_aisearch.emulator.envelopes import Reply, error, invalid, ok
from airflow_provider_aisearch.emulator.ratelimit import RateLimit
from airflow_provider_aisearch.emulator.state import LOG_TIME_UNITS, TIMESTAMP_FORMATS
from airflow_provider_aisearch.emulator.uploads import UploadState

__all__ = ["CONTROL_PREFIX", "ControlEndpoints"]

CONTROL_PREFIX = "/_emulator/"

_NOT_FOUND = {"code": 7003, "message": "No control route for the URI."}
_DENIED = {"code": 10000, "message": "Authentication error"}


class ControlEndpoints(UploadState):
    """The ``/_emulator/`` routes, for :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`."""

    token: str
    token_revoked: bool
    rate_limit: RateLimit | None
    cooldown: float
    requests: list[Any]

    def _serve_control(self, h: BaseHTTPRequestHandler, raw_path: str, query: dict[str, str], length: int) -> None:
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        status, reply, _ = self._control(h.command, raw_path, query, body, h.headers.get("Authorization", ""))
        data = json.dumps(reply).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        try:
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True  # the controlling client gave up

    def _control(self, method: str, path: str, query: dict[str, str], body: Any, authorization: str) -> Reply:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {self.token}".encode()):
            return error(401, _DENIED)
        route = path[len(CONTROL_PREFIX) :].rstrip("/")
        data = body if isinstance(body, dict) else {}
        try:
            if (method, route) == ("GET", "requests"):
                return self._control_requests(int(query.get("after", "0")))
            if (method, route) == ("POST", "instances"):
                self._control_add_instance(data)
                return ok({})
            if (method, route) == ("PUT", "items"):
                self._control_item_settings(data)
                return ok({})
            if (method, route) == ("GET", "items"):
                return ok(self.items(query.get("instance", ""), namespace=query.get("namespace", "default")))
            if (method, route) == ("POST", "jobs"):
                return ok(self._control_add_jobs(data))
            if (method, route) == ("POST", "jobs/end"):
                return ok(self._control_end_jobs(data))
            if (method, route) == ("GET", "jobs"):
                return ok(self.jobs(query.get("instance", ""), namespace=query.get("namespace", "default")))
            if (method, route) == ("PUT", "rate-limit"):
                limit = data.get("limit")
                window = float(data.get("window", 10.0))
                with self._lock:
                    self.rate_limit = None if limit is None else RateLimit(int(limit), window, window)
                return ok({})
            if (method, route) == ("PUT", "token"):
                revoked = data.get("revoked")
                if not isinstance(revoked, bool):
                    raise ValueError(f"revoked must be true or false, got {revoked!r}")
                with self._lock:
                    self.token_revoked = revoked
                return ok({"revoked": revoked})
            if (method, route) == ("PUT", "settings"):
                with self._lock:
                    self._control_formats(data)  # first: a bad value changes nothing
                    if data.get("job_duration") is not None:
                        self.job_duration = float(data["job_duration"])
                    if data.get("cooldown") is not None:
                        self.cooldown = float(data["cooldown"])
                    if data.get("upload_duration") is not None:
                        self.set_upload_duration(float(data["upload_duration"]))
                return ok({})
        except KeyError as exc:
            return error(404, {"code": 7002, "message": f"not found: {exc}"})
        except (TypeError, ValueError) as exc:
            return error(400, invalid(str(exc)))
        return error(404, _NOT_FOUND)

    def _control_formats(self, data: dict[str, Any]) -> None:
        for key, allowed in (("timestamp_format", TIMESTAMP_FORMATS), ("log_time_unit", LOG_TIME_UNITS)):
            value = data.get(key)
            if value is not None and value not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}")
        for key in ("timestamp_format", "log_time_unit"):
            if data.get(key) is not None:
                setattr(self, key, data[key])

    def _control_add_instance(self, data: dict[str, Any]) -> None:
        options: dict[str, Any] = {"namespace": str(data.get("namespace", "default"))}
        for key in ("type", "source", "paused", "sync_interval", "items", "documents"):
            if key in data:
                options[key] = data[key]
        self.add_instance(str(data["instance"]), **options)

    def _control_item_settings(self, data: dict[str, Any]) -> None:
        instance = data.get("instance")
        where: dict[str, Any] = {
            "instance_id": None if instance is None else str(instance),
            "namespace": str(data.get("namespace", "default")),
        }
        with self._lock:
            if data.get("error_share") is not None:
                self.set_item_errors(data["error_share"], **where)
            if data.get("skipped_share") is not None:
                self.set_item_skipped(data["skipped_share"], **where)
            if data.get("degraded") is not None:
                self.set_degraded(data["degraded"], **where)
            if data.get("lag") is not None:
                self.set_item_lag(data["lag"], **where)
            if "stats_omit" in data or "stats_replace" in data:
                self.set_stats_fields(omit=data.get("stats_omit") or (), replace=data.get("stats_replace"), **where)

    def _control_requests(self, after: int) -> Reply:
        with self._lock:
            records = list(enumerate(self.requests))[after:]
            nxt = len(self.requests)
        out = [
            {
                "seq": seq,
                "at": r.at,
                "method": r.method,
                "path": r.path,
                "route": r.route,
                "status": r.status,
                "fault": r.fault,
                "peer_port": r.peer_port,
                "connection": r.connection,
                "user_agent": r.user_agent,
            }
            for seq, r in records
        ]
        return ok({"requests": out, "next": nxt})

    def _control_add_jobs(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        instance, namespace = str(data["instance"]), str(data.get("namespace", "default"))
        common: dict[str, Any] = {
            "namespace": namespace,
            "source": str(data.get("source", "user")),
            "description": data.get("description"),
            "duration": None if data.get("duration") is None else float(data["duration"]),
            "end_reason": data.get("end_reason", "completed"),
        }
        with self._lock:
            if data.get("supersede"):
                jobs = [self.start_job(instance, **common)]
            else:
                jobs = [self.add_job(instance, **common) for _ in range(int(data.get("count", 1)))]
            return [self._job_dict(job) for job in jobs]

    def _control_end_jobs(self, data: dict[str, Any]) -> list[str]:
        instance, namespace = str(data["instance"]), str(data.get("namespace", "default"))
        wanted = data.get("job_ids")
        reason = data.get("end_reason", "completed")
        at = None if data.get("ended_at") is None else float(data["ended_at"])
        with self._lock:
            running = [j["id"] for j in self.jobs(instance, namespace=namespace) if j["ended_at"] is None]
            ended = [job_id for job_id in running if wanted is None or job_id in wanted]
            for job_id in ended:
                self.finish_job(instance, job_id, reason, namespace=namespace, ended_at=at)
        return ended
