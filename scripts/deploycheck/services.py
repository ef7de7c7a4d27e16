"""Processes and services for ``make deploy-check``: PostgreSQL, Redis and the emulator in temp dirs.

Every process runs in its own process group, logs to a file in the run's temp dir, and is stopped by
PID (SIGTERM, then SIGKILL after a grace period). Each child gets ``AISEARCH_DEPLOY_CHECK=<run id>`` in
its environment, so :func:`survivors` finds any descendant left behind, whatever its process group.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

MARKER = "AISEARCH_DEPLOY_CHECK"


class DeployCheckFailed(Exception):
    """A step or a scenario of the deploy check did not hold."""


#: The tag of every printed line (the UI check, which shares these helpers, sets its own).
LOG_TAG = "deploy-check"


def log(message: str) -> None:
    print(f"[{LOG_TAG} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    """A loopback port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40, redact: tuple[str, ...] = ()) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    text = "\n".join(text.splitlines()[-lines:])
    for secret in redact:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class Child:
    """One started process (the leader of its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    out: IO[bytes]
    tier: int
    #: What it was started with (its environment without the run marker), for :meth:`Processes.restart`.
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None


@dataclass
class Processes:
    """Child processes, stopped by PID in reverse tiers (Airflow first, then the services it uses)."""

    run_id: str
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], env: dict[str, str], *, tier: int, user: str | None = None
    ) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        out = log_path.open("ab")
        proc = subprocess.Popen(
            argv,
            env={**env, MARKER: self.run_id},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=user,
            cwd=self.log_dir,
        )
        self.children.append(Child(name, proc, log_path, out, tier, list(argv), dict(env), user))
        log(f"started {name} (pid {proc.pid})")
        return proc

    def get(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(name)

    def kill(self, name: str) -> float:
        """
        SIGKILL a child's process group, as a crash would, and wait until it is gone; the kill's epoch time.

        The child stays in :attr:`children` (dead) until :meth:`restart`.
        """
        child = self.get(name)
        at = time.time()
        signal_group(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=30)
        _wait_group_gone(child.proc.pid)
        return at

    def restart(
        self, name: str, argv: list[str] | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """
        Start a child again under the same name (its log file goes on): reap the old process (it must
        have exited, see :meth:`kill`), drop it from :attr:`children` and start a new one in the same tier.

        :param name: The child's name.
        :param argv: The command line (default: the old one).
        :param env: The environment (default: the old one).
        """
        old = self.get(name)
        old.proc.wait(timeout=30)
        old.out.close()
        self.children.remove(old)
        argv = old.argv if argv is None else argv
        env = old.env if env is None else env
        return self.start(name, argv, env, tier=old.tier, user=old.user)

    def stop_all(self, grace: float = 30.0) -> None:
        """SIGTERM each tier's process groups together, wait up to ``grace``, SIGKILL what is left."""
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            started = time.monotonic()
            for child in group:
                signal_group(child.proc.pid, signal.SIGTERM)
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.1, grace - (time.monotonic() - started)))
                except subprocess.TimeoutExpired:
                    log(f"{child.name} (pid {child.proc.pid}) ignored SIGTERM for {grace:.0f} s; SIGKILL")
                signal_group(child.proc.pid, signal.SIGKILL)  # also whatever the leader left in its group
                child.proc.wait()
                _wait_group_gone(child.proc.pid)
                child.out.close()
            log(f"stopped tier {tier} ({', '.join(c.name for c in group)}) in {time.monotonic() - started:.1f} s")
        self.children.clear()

    def survivors(self) -> list[tuple[int, str]]:
        """Processes still carrying this run's marker (any process group), as (pid, command line)."""
        found = []
        needle = f"{MARKER}={self.run_id}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append((int(entry.name), cmdline.strip()))
        return found


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group (``start_new_session=True``: its id is the leader's pid); gone is fine."""
    try:
        os.killpg(pgid, sig)  # start_new_session=True: the group id is the child's pid
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout: float = 5.0) -> None:
    """SIGKILL is asynchronous: wait until no process of the group is left (so none counts as a survivor)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)


def wait_until(what: str, check: object, timeout: float, interval: float = 0.5) -> float:
    """Call ``check()`` until it is truthy; return the seconds it took, or raise after ``timeout``."""
    assert callable(check)
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise DeployCheckFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def alive(proc: subprocess.Popen[bytes], name: str) -> None:
    """Raise :class:`DeployCheckFailed` if ``proc`` has exited."""
    if proc.poll() is not None:
        raise DeployCheckFailed(f"{name} exited with code {proc.returncode}")


# -- PostgreSQL ---------------------------------------------------------------------------------


def pg_bindir() -> Path:
    """Debian keeps the server binaries under /usr/lib/postgresql/<version>/bin, off the PATH."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise DeployCheckFailed("PostgreSQL is not installed (apt-get install postgresql; `make deploy-deps`)")
    return versions[-1].parent


def start_postgres(procs: Processes, base: Path, env: dict[str, str]) -> str:
    """initdb into ``base/pg`` and run ``postgres`` on a free loopback port; return the SQLAlchemy URL."""
    bindir = pg_bindir()
    data, sockets = base / "pg" / "data", base / "pg" / "sock"
    sockets.mkdir(parents=True)
    # initdb and postgres refuse to run as root: run them as the postgres user, which owns the dir.
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        pw = pwd.getpwnam(user)
        for path in (base / "pg", sockets):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    initdb = subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "airflow", "-A", "trust", "-E", "UTF8", "--no-sync"],
        env={**env, "LC_ALL": "C.UTF-8"},
        user=user,
        capture_output=True,
        text=True,
    )
    if initdb.returncode:
        raise DeployCheckFailed(f"initdb failed: {initdb.stdout[-2000:]}{initdb.stderr[-2000:]}")
    port = free_port()
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets)]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c", "fsync=off"]
    proc = procs.start("postgres", argv, env, tier=0, user=user)

    def ready() -> bool:
        alive(proc, "postgres")
        return (
            subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow"], capture_output=True
            ).returncode
            == 0
        )

    wait_until("PostgreSQL accepting connections", ready, 60)
    created = subprocess.run(
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
        env=env,
        capture_output=True,
        text=True,
    )
    if created.returncode:
        raise DeployCheckFailed(f"createdb failed: {created.stderr[-2000:]}")
    return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"


# -- Redis --------------------------------------------------------------------------------------


def start_redis(procs: Processes, base: Path, env: dict[str, str]) -> str:
    """A throwaway redis-server (no persistence) on a free loopback port; return the broker URL."""
    server = shutil.which("redis-server")
    if not server:
        raise DeployCheckFailed("redis-server is not installed (apt-get install redis-server; `make deploy-deps`)")
    workdir = base / "redis"
    workdir.mkdir()
    port = free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir), "--daemonize", "no", "--protected-mode", "yes"]
    proc = procs.start("redis", argv, env, tier=0)

    def ready() -> bool:
        alive(proc, "redis")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until("Redis answering PING", ready, 30)
    return f"redis://127.0.0.1:{port}/0"


# -- the emulator -------------------------------------------------------------------------------

CONN_LINE = re.compile(r"^export AIRFLOW_CONN_AISEARCH_DEFAULT='(.*)'$", re.MULTILINE)


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

    def add_instance(self, instance: str, namespace: str = "default") -> None:
        """Create an instance (and its namespace)."""
        self.control("POST", "instances", {"instance": instance, "namespace": namespace})

    def add_jobs(
        self,
        count: int,
        *,
        instance: str,
        namespace: str = "default",
        duration: float,
        end_reason: str | None = "completed",
        source: str = "user",
        description: str | None = None,
    ) -> list[dict[str, Any]]:
        """Running jobs side by side (no supersede, no cooldown)."""
        body = {"instance": instance, "namespace": namespace, "count": count, "duration": duration}
        body.update({"end_reason": end_reason, "source": source, "description": description})
        return list(self.control("POST", "jobs", body))

    def start_job(
        self,
        *,
        instance: str,
        namespace: str = "default",
        duration: float,
        end_reason: str | None = "completed",
        source: str = "user",
        description: str | None = None,
    ) -> dict[str, Any]:
        """Start a job as Cloudflare does: every running job of the instance ends ``new_job_has_started``."""
        body = {"instance": instance, "namespace": namespace, "duration": duration, "supersede": True}
        body.update({"end_reason": end_reason, "source": source, "description": description})
        return dict(self.control("POST", "jobs", body)[0])

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
