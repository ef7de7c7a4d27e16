"""Attribution for ``make deploy-check``: which process sent which emulator request, and the CPU it used.

The emulator logs every API request with its TCP source port (``peer_port``). A :class:`Sampler`
thread reads, every :data:`SAMPLE_EVERY` s, which local ports each named process tree (the
triggerers) holds towards the emulator (``/proc`` through psutil) and which per-trigger log files it
has open (so a triggerer job id maps to a process). :func:`attribute` turns the samples into an owner
per request; :func:`per_interval`, :func:`fixed_window_counts` and :func:`sliding_window_max` count
them. Pure parts are tested in ``tests/test_deploy_check_polling.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped]  # installed with Airflow; no stubs in the venv

from deploycheck.harness import Deployment
from deploycheck.services import DeployCheckFailed

#: Most jobs one list page holds (the provider reads pages of 50, Cloudflare's maximum).
PAGE_SIZE = 50
#: Seconds between two samples of the processes' ports and open trigger logs.
SAMPLE_EVERY = 0.2

_JOBS_PATH = re.compile(r"/instances/([^/?]+)/jobs(?:/([^/?]+)(/logs)?)?/?$")


def request_kind(record: Mapping[str, Any], instance: str | None = None) -> str | None:
    """
    What an emulator request was: ``list``, ``get``, ``logs``, ``create``, ``cancel`` or ``other``.

    :param record: One request record (``method``, ``path``).
    :param instance: Only requests on this instance's jobs count; others give ``None``.
    """
    match = _JOBS_PATH.search(str(record.get("path", "")).split("?", 1)[0])
    if match is None:
        return None if instance is not None else "other"
    if instance is not None and match.group(1) != instance:
        return None
    method = str(record.get("method", "")).upper()
    if match.group(3):
        return "logs"
    if match.group(2):
        return "get" if method == "GET" else "cancel"
    return "list" if method == "GET" else "create"


def expected_pages(jobs_listed: int, page_size: int = PAGE_SIZE) -> int:
    """List pages one shared round reads when its waiters' jobs are among ``jobs_listed`` newest jobs."""
    return max(1, math.ceil(jobs_listed / page_size))


@dataclass
class PortOwners:
    """Which process held each local TCP port towards the emulator, as sampled (port -> owner, when)."""

    seen: dict[int, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, port: int, owner: str, at: float) -> None:
        """Record that ``owner`` held ``port`` at ``at`` (a change of owner starts a new entry)."""
        entries = self.seen[port]
        if not entries or entries[-1][1] != owner:
            entries.append((at, owner))

    def owner(self, port: int | None, at: float) -> str | None:
        """The owner of ``port`` at ``at``: the latest sampled before (else the first after), or ``None``."""
        if port is None or port not in self.seen:
            return None
        entries = self.seen[port]
        before = [owner for when, owner in entries if when <= at + SAMPLE_EVERY]
        return before[-1] if before else entries[0][1]


def attribute(records: Iterable[Mapping[str, Any]], owners: PortOwners) -> dict[int, str]:
    """
    The owner of each request (by ``seq``): its ``peer_port``'s owner, else that of another request on
    the same TCP connection (a keep-alive connection is one port), else ``"other"``.
    """
    records = list(records)
    by_connection: dict[Any, str] = {}
    result: dict[int, str] = {}
    for rec in records:
        found = owners.owner(rec.get("peer_port"), float(rec.get("at", 0.0)))
        if found is not None:
            by_connection.setdefault(rec.get("connection"), found)
            result[int(rec["seq"])] = found
    for rec in records:
        seq = int(rec["seq"])
        if seq not in result:
            result[seq] = by_connection.get(rec.get("connection"), "other")
    return result


def per_interval(
    records: Iterable[Mapping[str, Any]],
    owner_of: Mapping[int, str],
    *,
    start: float,
    interval: float,
    count: int,
    instance: str,
) -> dict[str, dict[str, list[int]]]:
    """
    Requests on ``instance``'s jobs per owner, per kind, per interval: ``{owner: {kind: [n0, n1, ...]}}``.

    Interval ``k`` is ``[start + k * interval, start + (k + 1) * interval)``; requests outside the
    ``count`` intervals are left out.
    """
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * count))
    for rec in records:
        kind = request_kind(rec, instance)
        if kind is None:
            continue
        k = math.floor((float(rec["at"]) - start) / interval)
        if 0 <= k < count:
            table[owner_of.get(int(rec["seq"]), "other")][kind][k] += 1
    return {owner: dict(kinds) for owner, kinds in table.items()}


def fixed_window_counts(times: Sequence[float], window: float) -> list[int]:
    """
    Requests per window of the emulator's limiter: a window starts at a request and lasts ``window``
    seconds; the first request after it starts the next (as ``emulator/ratelimit.py`` counts).
    """
    counts: list[int] = []
    start: float | None = None
    for at in sorted(times):
        if start is None or at >= start + window:
            start = at
            counts.append(0)
        counts[-1] += 1
    return counts


def sliding_window_max(times: Sequence[float], window: float) -> int:
    """The most requests in any ``window`` seconds (any start), a stricter figure than the fixed windows."""
    ordered = sorted(times)
    best = lo = 0
    for hi, at in enumerate(ordered):
        while ordered[lo] <= at - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def trigger_log_owners(paths: Iterable[str | Path]) -> Counter[str]:
    """Triggerer job ids from per-trigger log file names (``*.log.trigger.<job id>.log``), counted."""
    found: Counter[str] = Counter()
    for path in paths:
        match = re.search(r"\.log\.trigger\.(\d+)\.log$", str(path))
        if match:
            found[match.group(1)] += 1
    return found


# -- the deployment side -------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (reaped children included)."""
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class Sampler(threading.Thread):
    """
    Every :data:`SAMPLE_EVERY` s: which local ports each named process tree holds towards the emulator,
    and which per-trigger log files it has open (triggerer job id -> process name).
    """

    def __init__(self, pids: Callable[[], dict[str, int]], emulator_port: int) -> None:
        super().__init__(name="deploy-check-port-sampler", daemon=True)
        self.pids = pids
        self.emulator_port = emulator_port
        self.owners = PortOwners()
        self.job_owner: dict[str, str] = {}
        self.samples = 0
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        now = time.time()
        for name, pid in self.pids().items():
            for proc in _tree(pid):
                try:
                    conns = proc.net_connections(kind="tcp")
                except psutil.Error:
                    continue
                with self._lock:
                    for conn in conns:
                        if conn.raddr and conn.raddr.port == self.emulator_port and conn.laddr:
                            self.owners.add(conn.laddr.port, name, now)
                self._scan_fds(proc.pid, name)
        self.samples += 1

    def _scan_fds(self, pid: int, name: str) -> None:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            match = re.search(r"\.log\.trigger\.(\d+)\.log$", target)
            if match:
                with self._lock:
                    self.job_owner.setdefault(match.group(1), name)

    def snapshot(self) -> tuple[PortOwners, dict[str, str]]:
        """A copy of what was sampled so far."""
        with self._lock:
            owners = PortOwners()
            for port, entries in self.owners.seen.items():
                owners.seen[port] = list(entries)
            return owners, dict(self.job_owner)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def emulator_port(dep: Deployment) -> int:
    """The emulator's TCP port, from the connection every component got."""
    host = json.loads(dep.emulator.connection)["host"]
    port = urlsplit(host).port
    if port is None:
        raise DeployCheckFailed(f"no port in the emulator connection's host {host!r}")
    return port


def triggerer_pids(dep: Deployment) -> dict[str, int]:
    """The live triggerer processes by component name (``triggerer-1``, ``triggerer-2``)."""
    return {c.name: c.proc.pid for c in dep.procs.children if c.name.startswith("triggerer-") and c.proc.poll() is None}
