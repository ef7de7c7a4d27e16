"""What every scenario of ``make deploy-check`` gets (:class:`Deployment`) and gives back (:class:`ScenarioResult`).

A scenario is a function ``run(dep: Deployment) -> ScenarioResult`` registered in
``scripts/deploy_check.py``. It drives the deployment the way a user does (the REST API, signals to
component processes) and the emulator through its control channel, and reports pass/fail with its
figures. It raises :class:`~deploycheck.services.DeployCheckFailed` (or returns ``passed=False``) when
what it guards does not hold; the runner then prints the components' log tails and goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from deploycheck.airflow import Api
from deploycheck.emulator_process import Emulator
from deploycheck.services import Processes


@dataclass
class Deployment:
    """The running deployment, as a scenario sees it."""

    api: Api
    emulator: Emulator
    procs: Processes
    repo: Path
    #: AIRFLOW_HOME (task and trigger logs are under ``home / "logs"``).
    home: Path
    #: The environment every Airflow component was started with.
    env: dict[str, str]
    #: The ``airflow`` executable.
    airflow: str
    log_dir: Path
    #: Startup and settle timings, seconds (shown in the report's startup table).
    timings: dict[str, float] = field(default_factory=dict)
    #: The scenario numbers this run executes, in order (``None``: unknown), so a scenario can hand
    #: its state to a later one (scenario 2's deferred sensors to scenario 3's failover).
    selected: tuple[int, ...] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to redact from anything printed (the emulator's token)."""
        return (self.emulator.token,)


@dataclass
class ScenarioResult:
    """What one scenario found: pass/fail, its figures for the summary table, and its own section."""

    number: int
    title: str
    passed: bool = False
    #: Short figures for the scenarios table (name -> value), in order.
    figures: dict[str, str] = field(default_factory=dict)
    #: Markdown lines for the scenario's own section in docs/deployment.md (tables, notes).
    details: list[str] = field(default_factory=list)
    failure: str = ""
    seconds: float = 0.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    def fail(self, reason: str) -> ScenarioResult:
        """Mark failed (keeping the first reason) and return self."""
        self.passed = False
        self.failure = self.failure or reason
        return self

    def finish(self) -> ScenarioResult:
        """Record the scenario's duration and return self."""
        self.seconds = time.monotonic() - self._started
        return self
