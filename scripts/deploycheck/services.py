"""Processes and services for ``make deploy-check``: child processes, waits, PostgreSQL and Redis in temp dirs.

Every process runs in its own process group, logs to a file in the run's temp dir, and is stopped by
PID (SIGTERM, then SIGKILL after a grace period). Each child gets ``AISEARCH_DEPLOY_CHECK=<run id>`` in
its environment, so :func:`survivors` finds any descendant left behind, whatever its process group.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

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

    def kill(self, name: str, *, descendants: bool = False) -> float:
        """
        SIGKILL a child's process group, as a crash would, and wait until it is gone; the kill's epoch time.

        The child stays in :attr:`children` (dead) until :meth:`restart`.

        :param name: The child's name.
        :param descendants: Also SIGKILL every process below it that another process group holds (an
            Airflow task runs in a group of its own below its Celery worker), found before the kill.
        """
        child = self.get(name)
        below = tree(child.proc.pid) if descendants else []
        at = time.time()
        signal_group(child.proc.pid, signal.SIGKILL)
        signal_pids(below, signal.SIGKILL)
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


def parent_pids(proc_root: Path = Path("/proc")) -> dict[int, int]:
    """Every process's parent pid, from ``/proc/<pid>/stat``."""
    parents: dict[int, int] = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int, parents: dict[int, int]) -> list[int]:
    """``pid`` and every process below it (whatever their process group), parents first."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(sorted(children.get(current, [])))
    return found


def tree(pid: int) -> list[int]:
    """A live process and all its descendants (empty when it is gone)."""
    return descendants(pid, parent_pids()) if Path(f"/proc/{pid}").exists() else []


def signal_pids(pids: list[int], sig: int) -> None:
    """Signal each process of ``pids``; gone is fine."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
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
