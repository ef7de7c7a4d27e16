"""The built wheel and sdist, as a user gets them: contents, twine check, and a smoke run of the wheel.

The wheel is installed (not the checkout) into a fresh venv under a temp dir, with the Airflow version of
the interpreter running the tests (3.3 in ``.venv``, 2.11 in ``.venv-airflow2``), so ``make test`` smokes
both. The venv is pinned to the running venv's packages (``uv pip freeze``) and filled from uv's cache;
for an Airflow whose constraints the repo carries (``constraints/airflow-<version>.txt``: 2.11.2), also to
those, the way Airflow's users install it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_aisearch

# Building and installing take seconds with a warm uv cache, minutes with a cold one.
pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "airflow_provider_aisearch"
AIRFLOW_VERSION = version("apache-airflow")
#: Airflow's constraints for this Airflow version where the repo carries them (the pins that matter for it).
AIRFLOW_CONSTRAINTS = REPO / "constraints" / f"airflow-{AIRFLOW_VERSION}.txt"
SMOKE_TOKEN = "tok-smoke-Sekrit"
CMD_TIMEOUT = 600


def _uv() -> str | None:
    for candidate in (Path(sys.executable).with_name("uv"), REPO / ".venv" / "bin" / "uv"):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("uv")


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=CMD_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _source_modules() -> list[str]:
    """Every module of the package in the checkout (what the wheel must ship)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class SmokeVenv:
    python: Path
    env: dict[str, str]
    cwd: Path

    @property
    def airflow(self) -> str:
        return str(self.python.with_name("airflow"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    uv = _uv()
    if uv is None:
        pytest.skip("building is impossible here: no uv (make .venv/.installed installs it into .venv/bin)")
    out = tmp_path_factory.mktemp("dist")
    _run(uv, "build", "-q", "--out-dir", str(out), str(REPO))
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel=wheel, sdist=sdist)


@pytest.fixture(scope="module")
def smoke(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmokeVenv]:
    uv = _uv()
    assert uv is not None
    root = tmp_path_factory.mktemp(f"smoke-airflow-{AIRFLOW_VERSION}")
    venv = root / "venv"
    _run(uv, "venv", "-q", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    # Same versions as the venv running the tests, so uv resolves from its cache (no checkout, no editable).
    frozen = _run(uv, "pip", "freeze", "--exclude-editable", "--python", sys.executable).stdout
    constraints = root / "constraints.txt"
    constraints.write_text(frozen)
    airflows = ("-c", str(AIRFLOW_CONSTRAINTS)) if AIRFLOW_CONSTRAINTS.is_file() else ()
    _run(
        uv, "pip", "install", "-q", "--python", str(python), "-c", str(constraints), *airflows,
        str(dist.wheel), f"apache-airflow=={AIRFLOW_VERSION}",
    )  # fmt: skip
    home = root / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    cwd = root / "cwd"  # not the checkout, so nothing imports from the source tree
    cwd.mkdir()
    yield SmokeVenv(python=python, env=env, cwd=cwd)
    shutil.rmtree(root, ignore_errors=True)


def _json_rows(output: str) -> list[dict[str, Any]]:
    """The JSON document of ``airflow ... -o json`` (Airflow may print log lines, which start with ``[``, first)."""
    for line in output.splitlines():
        if line.startswith(("[{", "[]", "{")):
            rows, _ = json.JSONDecoder().raw_decode(output[output.index(line) :])
            return rows if isinstance(rows, list) else [rows]
    raise AssertionError(f"no JSON in {output[-2000:]!r}")


def test_wheel_ships_every_module_and_py_typed(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as whl:
        names = set(whl.namelist())
    expected = {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")} | {"airflow_provider_aisearch/py.typed"}
    assert sorted(expected - names) == []
    dist_info = f"airflow_provider_aisearch-{airflow_provider_aisearch.__version__}.dist-info"
    assert f"{dist_info}/entry_points.txt" in names
    assert any(n.startswith(f"{dist_info}/") and n.endswith("LICENSE") for n in names)


def test_sdist_has_package_docs_licence_and_tests(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as tar:
        top = f"airflow_provider_aisearch-{airflow_provider_aisearch.__version__}"
        names = {n.removeprefix(f"{top}/") for n in tar.getnames()}
    wanted = {"pyproject.toml", "Makefile", "README.md", "LICENSE", "CHANGELOG.md", "docs/architecture.md"}
    wanted |= {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")}
    # The tests and what they read, so the suite runs from the unpacked sdist.
    wanted |= {str(p.relative_to(REPO)) for d in ("tests", "example_dags", "scripts") for p in (REPO / d).rglob("*.py")}
    wanted |= {str(p.relative_to(REPO)) for p in (REPO / "constraints").glob("*.txt")}  # the Makefile's -c files
    assert sorted(wanted - names) == []
    assert not any("__pycache__" in n or n.startswith((".venv", "docs/img")) for n in names)


def test_twine_check_passes(dist: Dist) -> None:
    uv = _uv()
    assert uv is not None
    # The same twine as `make dist` (uv's cached tool env: twine 7 cannot go into the Airflow 2.11 venv).
    twine = ("tool", "run", "-q", "--from", "twine>=7,<8", "twine")
    result = _run(uv, *twine, "check", "--strict", str(dist.wheel), str(dist.sdist))
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_installed_wheel_registers_provider_and_hook(smoke: SmokeVenv) -> None:
    got = _run(
        smoke.airflow, "providers", "get", "airflow-provider-aisearch", "-o", "json", cwd=smoke.cwd, env=smoke.env
    )
    (row,) = _json_rows(got.stdout)
    assert row == {"Provider": "airflow-provider-aisearch", "Version": airflow_provider_aisearch.__version__}
    hooks = _run(smoke.airflow, "providers", "hooks", "-o", "json", cwd=smoke.cwd, env=smoke.env)
    ours = [r for r in _json_rows(hooks.stdout) if r.get("connection_type") == "cloudflare_aisearch"]
    assert len(ours) == 1, hooks.stdout[-2000:]
    assert ours[0]["class"] == "airflow_provider_aisearch.hooks.AISearchHook"
    assert ours[0]["package_name"] == "airflow-provider-aisearch"


def test_installed_wheel_imports_every_module(smoke: SmokeVenv) -> None:
    modules = [m for m in _source_modules() if not m.endswith("__main__")]
    code = (
        "import importlib, json, pathlib, sys\n"
        "import airflow_provider_aisearch as p\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = repr(exc)\n"
        "root = pathlib.Path(p.__file__).parent\n"
        "print(json.dumps({'file': p.__file__, 'py_typed': (root / 'py.typed').is_file(), 'failed': failed}))\n"
    )
    out = json.loads(_run(str(smoke.python), "-c", code, json.dumps(modules), cwd=smoke.cwd, env=smoke.env).stdout)
    assert out["failed"] == {}
    assert Path(out["file"]).is_relative_to(smoke.python.parents[1])  # the wheel, not the checkout
    assert out["py_typed"] is True


def _pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a constraints file, by normalised name."""
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, pinned = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.strip().lower().replace("_", "-")] = pinned.strip()
    return pins


def test_airflow_constraints_hold_in_the_test_and_smoke_venvs(smoke: SmokeVenv) -> None:
    """Airflow 2.11.2 needs its constraints (cryptography 51 breaks every connection with a password)."""
    if not AIRFLOW_CONSTRAINTS.is_file():
        pytest.skip(f"the repo carries no constraints for Airflow {AIRFLOW_VERSION} (only needed for 2.11)")
    pins = _pins(AIRFLOW_CONSTRAINTS)
    assert pins  # the file pins something
    code = (
        "import json, sys\n"
        "from importlib.metadata import version\n"
        "print(json.dumps({name: version(name) for name in sys.argv[1:]}))\n"
    )
    for python in (Path(sys.executable), smoke.python):
        result = _run(str(python), "-c", code, *pins, cwd=smoke.cwd, env=smoke.env)
        assert json.loads(result.stdout.strip().splitlines()[-1]) == pins, python


def test_installed_wheel_emulator_help(smoke: SmokeVenv) -> None:
    result = _run(str(smoke.python), "-m", "airflow_provider_aisearch.emulator", "--help", cwd=smoke.cwd, env=smoke.env)
    assert "usage: python -m airflow_provider_aisearch.emulator" in result.stdout
    assert "--control" in result.stdout


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    """Read ``count`` stdout lines from ``proc`` (a reader thread, so a silent process cannot hang the test)."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        while len(lines) < count:
            line = proc.stdout.readline()
            if not line:
                return
            lines.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return lines


def test_installed_wheel_hook_call_against_its_emulator(smoke: SmokeVenv) -> None:
    emulator = subprocess.Popen(
        [str(smoke.python), "-m", "airflow_provider_aisearch.emulator", "--host", "127.0.0.1", "--port", "0",
         "--token", SMOKE_TOKEN, "--seed-jobs", "3", "--control"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=smoke.cwd, env=smoke.env,
    )  # fmt: skip
    try:
        lines = _read_lines(emulator, 2, timeout=120)
        assert len(lines) == 2, f"emulator printed {lines!r}"
        url = lines[0].removeprefix("AI Search emulator on ")
        conn = lines[1].removeprefix("export AIRFLOW_CONN_AISEARCH_DEFAULT='").removesuffix("'")
        code = (
            "from airflow_provider_aisearch.hooks import AISearchHook\n"
            "page = AISearchHook().list_jobs('docs')\n"
            "print(len(page.jobs))\n"
        )
        env = {**smoke.env, "AIRFLOW_CONN_AISEARCH_DEFAULT": conn}
        result = _run(str(smoke.python), "-c", code, cwd=smoke.cwd, env=env)
        assert result.stdout.strip().splitlines()[-1] == "3"
        assert SMOKE_TOKEN not in result.stdout + result.stderr
        control = url.removesuffix("/client/v4") + "/_emulator/requests"
        request = urllib.request.Request(control, headers={"Authorization": f"Bearer {SMOKE_TOKEN}"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            log = json.load(reply)["result"]["requests"]
        calls = [(r["method"], r["path"], r["status"]) for r in log if not r["path"].startswith("/_emulator/")]
        assert len(calls) == 1, calls
        method, path, status = calls[0]
        assert (method, status) == ("GET", 200)
        assert path.split("?")[0].endswith("/instances/docs/jobs")
    finally:
        emulator.send_signal(signal.SIGINT)  # the emulator stops its server on KeyboardInterrupt
        try:
            emulator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait(timeout=30)
        for stream in (emulator.stdout, emulator.stderr):
            if stream is not None:
                stream.close()
