"""The emulated account's state: instances, their jobs, and how jobs start, run and end.

A job runs for its planned ``duration`` and then ends with its planned end reason, settled
lazily whenever it is looked at (:meth:`EmulatedJob.settle`); starting a job ends the one
running on the instance with ``new_job_has_started``. An instance with a ``sync_interval``
(:meth:`JobState.set_sync_interval`) starts its own ``source: "schedule"`` jobs, as Cloudflare's
scheduled syncs do, also settled lazily: one at each due time at which no job was running.
:class:`JobState` also renders jobs and their logs as the API's JSON, in the emulator's list order and
timestamp format (:meth:`JobState._ts` is the one timestamp formatter), leaving out the optional
fields a job does not have (:func:`.envelopes.present`), as Cloudflare's schema has them.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_aisearch.emulator.items import StatsFields

from airflow_provider_aisearch.emulator.envelopes import present

__all__ = [
    "JOB_FIELDS",
    "JOB_OPTIONAL_FIELDS",
    "LOG_TIME_UNITS",
    "TIMESTAMP_FORMATS",
    "EmulatedJob",
    "Instance",
    "JobState",
]

#: The emulator's timestamp formats (see :meth:`JobState._ts`).
TIMESTAMP_FORMATS = ("cloudflare", "iso", "mixed", "rfc3339", "epoch", "epoch_string")
#: The units of a log entry's ``created_at`` number.
LOG_TIME_UNITS = ("seconds", "milliseconds")
#: A job's fields, and those Cloudflare's schema makes optional (not nullable): absent ones are left out.
JOB_FIELDS = ("id", "source", "description", "end_reason", "started_at", "ended_at", "last_seen_at")
JOB_OPTIONAL_FIELDS = ("description", "end_reason", "started_at", "ended_at", "last_seen_at")
#: The zone of the ``rfc3339`` format (not UTC, so that clients must convert).
RFC3339_OFFSET = timezone(timedelta(hours=2))


@dataclass
class EmulatedJob:
    """Server-side state of one job."""

    id: str
    source: str
    description: str | None
    started_at: float
    duration: float
    planned_end_reason: str | None
    ended_at: float | None = None
    end_reason: str | None = None
    #: Values sent in place of rendered fields while those are present (e.g. an unreadable timestamp).
    overrides: dict[str, Any] = field(default_factory=dict)

    def settle(self, now: float) -> None:
        """End the job if its planned duration has passed."""
        if self.ended_at is None and now >= self.started_at + self.duration:
            self.ended_at = self.started_at + self.duration
            self.end_reason = self.planned_end_reason

    def end(self, now: float, reason: str | None) -> None:
        """End the job now (if it still runs)."""
        if self.ended_at is None:
            self.ended_at = now
            self.end_reason = reason


@dataclass
class Instance:
    """
    One AI Search instance: its jobs (in creation order), when the API last created one, what it
    indexes (``type``, ``source``, ``item_count`` files) and its item settings (:mod:`.items`).
    """

    jobs: list[EmulatedJob] = field(default_factory=list)
    last_create: float | None = None
    #: Seconds between scheduled syncs (``None``: none), and when the next one is due.
    sync_interval: float | None = None
    next_sync: float = 0.0
    id: str = ""
    namespace: str = "default"
    type: str | None = "r2"
    source: str | None = None
    paused: bool = False
    created_at: float = 0.0
    item_count: int = 20
    #: Per-instance item settings (``None``: the emulator-wide one; see :mod:`.items`).
    item_error_share: float | None = None
    item_skipped_share: float | None = None
    item_lag: float | None = None
    degraded: bool | None = None
    stats_fields: StatsFields | None = None


class JobState:
    """
    Instances and jobs of the emulated account, for :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`.

    The emulator's constructor sets the attributes below. Public methods take the emulator's lock;
    the internal ones expect their caller to hold it.
    """

    job_duration: float
    end_reason: str | None
    timestamp_format: str
    log_time_unit: str
    list_order: str
    clock: Callable[[], float]
    vary_fields: bool
    _rng: random.Random
    _lock: threading.RLock
    _namespaces: dict[str, dict[str, Instance]]
    _planned: list[tuple[float | None, str | None]]

    def add_instance(
        self,
        instance_id: str,
        *,
        namespace: str = "default",
        type: str | None = "r2",
        source: str | None = None,
        paused: bool = False,
        sync_interval: float | None = None,
        items: int = 20,
    ) -> None:
        """
        Create an instance (and its namespace); an instance that exists already is left as it is.

        :param type: ``"r2"``, ``"web-crawler"`` or ``None`` (managed upload-only storage).
        :param source: Bucket name or URL (default: ``<id>-bucket`` for r2, ``https://<id>.example.com``
            for a web crawler).
        :param paused: What the instance reports as ``paused``.
        :param sync_interval: Seconds between scheduled syncs (see :meth:`set_sync_interval`), also reported.
        :param items: How many files (or pages) the source holds.
        """
        if type not in ("r2", "web-crawler", None):
            raise ValueError(f"type must be 'r2', 'web-crawler' or None, got {type!r}")
        if isinstance(items, bool) or not isinstance(items, int) or items < 0:
            raise ValueError(f"items must be an integer >= 0, got {items!r}")
        if source is None and type == "r2":
            source = f"{instance_id}-bucket"
        elif source is None and type == "web-crawler":
            source = f"https://{instance_id.replace('_', '-')}.example.com"
        with self._lock:
            instances = self._namespaces.setdefault(namespace, {})
            if instance_id in instances:
                return
            instances[instance_id] = Instance(
                id=instance_id,
                namespace=namespace,
                type=type,
                source=source,
                paused=paused,
                created_at=self.clock(),
                item_count=items,
            )
        if sync_interval is not None:
            self.set_sync_interval(instance_id, sync_interval, namespace=namespace)

    def set_sync_interval(
        self, instance_id: str, seconds: float | None, *, namespace: str = "default", first_in: float | None = None
    ) -> None:
        """
        Let the instance start a ``source: "schedule"`` job every ``seconds`` (``None``: stop).

        A due sync is skipped while a job runs. Jobs last ``job_duration`` and end with ``end_reason``.

        :param first_in: Seconds until the first sync (default: ``seconds``).
        """
        if seconds is not None and not seconds > 0:
            raise ValueError(f"seconds must be > 0 or None, got {seconds!r}")
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            inst.sync_interval = seconds
            if seconds is not None:
                inst.next_sync = self.clock() + (seconds if first_in is None else first_in)

    def add_job(
        self,
        instance_id: str,
        *,
        namespace: str = "default",
        source: str = "schedule",
        description: str | None = None,
        started_at: float | None = None,
        duration: float | None = None,
        end_reason: str | None = "completed",
        job_id: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> EmulatedJob:
        """
        Add a job directly (no cooldown, no supersede). ``duration=0`` gives an ended job.

        :param overrides: Values the API sends in place of fields while those are present, e.g.
            ``{"started_at": "not a time"}`` (an ``ended_at`` override shows once the job has ended).
        """
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            job = EmulatedJob(
                id=job_id or self._new_id(),
                source=source,
                description=description,
                started_at=self.clock() if started_at is None else started_at,
                duration=self.job_duration if duration is None else duration,
                planned_end_reason=end_reason,
                overrides=dict(overrides or {}),
            )
            job.settle(self.clock())
            inst.jobs.append(job)
            return job

    def seed_jobs(
        self, instance_id: str, count: int, *, namespace: str = "default", end_reason: str | None = "completed"
    ) -> list[EmulatedJob]:
        """Add ``count`` ended jobs, one minute apart, the newest ending an hour ago."""
        base = self.clock() - 3600 - 60 * count
        return [
            self.add_job(
                instance_id,
                namespace=namespace,
                started_at=base + 60 * i,
                duration=30,
                end_reason=end_reason,
                source="schedule" if i % 2 else "user",
            )
            for i in range(count)
        ]

    def start_job(
        self,
        instance_id: str,
        *,
        namespace: str = "default",
        source: str = "schedule",
        description: str | None = None,
        duration: float | None = None,
        end_reason: str | None = "completed",
    ) -> EmulatedJob:
        """Start a job as Cloudflare would (ignoring the cooldown): a running job ends with ``new_job_has_started``."""
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            return self._start(inst, source, description, duration, end_reason)

    def plan_next_job(self, *, duration: float | None = None, end_reason: str | None = "completed") -> None:
        """Set duration and end reason for the next job created through the API (FIFO)."""
        with self._lock:
            self._planned.append((duration, end_reason))

    def finish_job(
        self,
        instance_id: str,
        job_id: str,
        end_reason: str | None = "completed",
        *,
        namespace: str = "default",
        ended_at: float | None = None,
    ) -> None:
        """
        End a running job now, listing it with ``ended_at`` (epoch seconds; default: now). A future
        ``ended_at`` stands for bad data or a clock glitch of the API: the job is listed as ended at once.
        """
        with self._lock:
            job = self._job(namespace, instance_id, job_id)
            if job is None:
                raise KeyError(job_id)
            job.end(self.clock() if ended_at is None else ended_at, end_reason)

    def jobs(self, instance_id: str, *, namespace: str = "default") -> list[dict[str, Any]]:
        """The instance's jobs as the API would return them (newest first), absent fields as ``None``."""
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(instance_id)
            return [self._job_dict(j) for j in self._ordered(inst)]

    # -- internals -------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def _instance(self, namespace: str, instance_id: str) -> Instance | None:
        inst = self._namespaces.get(namespace, {}).get(instance_id)
        if inst is not None and inst.sync_interval is not None:
            self._run_schedule(inst, inst.sync_interval)
        return inst

    def _run_schedule(self, inst: Instance, interval: float) -> None:
        """Start the scheduled syncs that fell due since the instance was last looked at."""
        now = self.clock()
        if now - inst.next_sync > 100 * interval:  # a long pause: only the syncs of the last 100 intervals
            inst.next_sync = now - 100 * interval
        while inst.next_sync <= now:
            due = inst.next_sync
            inst.next_sync = due + interval
            for job in inst.jobs:
                job.settle(due)
            if any(job.ended_at is None for job in inst.jobs):
                continue  # a job runs: this sync is skipped
            job = EmulatedJob(
                id=self._new_id(),
                source="schedule",
                description=None,
                started_at=due,
                duration=self.job_duration,
                planned_end_reason=self.end_reason,
            )
            job.settle(now)
            inst.jobs.append(job)

    def _job(self, namespace: str, instance_id: str, job_id: str) -> EmulatedJob | None:
        inst = self._instance(namespace, instance_id)
        if inst is None:
            return None
        return next((j for j in inst.jobs if j.id == job_id), None)

    def _ordered(self, inst: Instance) -> list[EmulatedJob]:
        now = self.clock()
        for job in inst.jobs:
            job.settle(now)
        if self.list_order == "none":
            return sorted(inst.jobs, key=lambda j: hashlib.sha256(j.id.encode()).digest())
        return sorted(inst.jobs, key=lambda j: j.started_at, reverse=self.list_order == "newest")

    def _ts(self, value: float | None, *, job_field: bool = False) -> str | int | None:
        """
        The one timestamp formatter, per :attr:`timestamp_format`.

        ``cloudflare``: ``2026-07-16 19:29:59`` (UTC, as Cloudflare sends today); ``iso``:
        ``2026-07-16T19:29:59Z``; ``mixed``: either, at random; ``rfc3339``: with microseconds and a
        ``+02:00`` offset (``2026-07-16T21:29:59.123456+02:00``); ``epoch`` / ``epoch_string``: a job's
        timestamps as Unix seconds, a number or a string (the schema types them as plain strings).
        The ``date-time`` fields of instances, stats and items are RFC 3339 (``Z``) in the epoch formats.

        :param job_field: A job's ``started_at`` / ``ended_at`` / ``last_seen_at`` (not a ``date-time``).
        """
        if value is None:
            return None
        form = self.timestamp_format
        if form in ("epoch", "epoch_string"):
            if job_field:
                return int(value) if form == "epoch" else str(int(value))
            form = "iso"
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
        if form == "rfc3339":
            return moment.astimezone(RFC3339_OFFSET).isoformat(timespec="microseconds")
        if form == "iso" or (form == "mixed" and self._rng.random() < 0.5):
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    def _job_json(self, job: EmulatedJob) -> dict[str, Any]:
        """The job as the API sends it: absent optional fields left out, overrides applied."""
        now = self.clock()
        job.settle(now)
        last_seen = job.ended_at if job.ended_at is not None else now
        data: dict[str, Any] = {
            "id": job.id,
            "source": job.source,
            "description": job.description,
            "end_reason": job.end_reason,
            "started_at": self._ts(job.started_at, job_field=True),
            "ended_at": self._ts(job.ended_at, job_field=True),
            "last_seen_at": self._ts(last_seen, job_field=True),
        }
        data.update({key: value for key, value in job.overrides.items() if data.get(key) is not None})
        data = present(data, JOB_OPTIONAL_FIELDS)
        if self.vary_fields:
            # Fields the API may add, and optional ones it may leave out.
            data["x_new_field"] = {"added": "later"}
            if self._rng.random() < 0.3:
                data.pop("last_seen_at", None)
        return data

    def _job_dict(self, job: EmulatedJob) -> dict[str, Any]:
        """:meth:`_job_json` with every field, absent ones as ``None`` (for tests and the control channel)."""
        return {**dict.fromkeys(JOB_FIELDS), **self._job_json(job)}

    def _logs_json(self, job: EmulatedJob) -> list[dict[str, Any]]:
        job.settle(self.clock())
        entries = [(job.started_at, "Starting indexing data source...")]
        if job.ended_at is None:
            entries.append((job.started_at, "Indexing in progress"))
        else:
            entries.append((job.started_at, "Indexing in progress"))
            if job.end_reason in (None, "", "completed"):
                entries.append((job.ended_at, "Indexing completed"))
            else:
                entries.append((job.ended_at, f"Job ended: {job.end_reason}"))
        # Newest first, as the live API appears to return them.
        scale = 1000 if self.log_time_unit == "milliseconds" else 1
        return [
            {"id": i + 1, "created_at": int(at * scale), "message": msg, "message_type": 1 if "ended" in msg else 0}
            for i, (at, msg) in reversed(list(enumerate(entries)))
        ]

    def _start(
        self, inst: Instance, source: str, description: str | None, duration: float | None, end_reason: str | None
    ) -> EmulatedJob:
        now = self.clock()
        for running in inst.jobs:
            running.settle(now)
            running.end(now, "new_job_has_started")
        job = EmulatedJob(
            id=self._new_id(),
            source=source,
            description=description,
            started_at=now,
            duration=self.job_duration if duration is None else duration,
            planned_end_reason=end_reason,
        )
        inst.jobs.append(job)
        inst.last_create = now
        return job
