"""The figures of a passing ``make deploy-check``: ``docs/deployment.md`` and the summary in ``docs/deploying.md``.

``docs/deploying.md`` keeps its "Proven in a real deployment" figures between two markers
(:data:`BEGIN`, :data:`END`); everything between them is rewritten from the scenarios' figures.
"""

from __future__ import annotations

import time
from pathlib import Path

from deploycheck.harness import ScenarioResult

BEGIN = "<!-- deploy-check figures: begin (written by make deploy-check) -->"
END = "<!-- deploy-check figures: end -->"


def write_report(
    path: Path,
    results: list[ScenarioResult],
    timings: dict[str, float],
    requests: dict[str, int],
    total: float,
    versions: dict[str, str],
    workers: dict[str, int],
) -> None:
    """``docs/deployment.md``: versions, the scenarios table, each scenario's section, startup, requests."""
    lines = [
        "# Proven in a real deployment: the last full `make deploy-check` run",
        "",
        "Written by `scripts/deploy_check.py`. A real Airflow 3 deployment on loopback: PostgreSQL metadata DB,",
        "CeleryExecutor with a Redis broker, api-server, scheduler, dag-processor, **two** triggerers and **two**",
        "Celery workers, the AI Search emulator (`--control`) as the API. DAGs are unpaused and triggered",
        "through the REST API with no logical date, as a user does. Scenario DAGs: `tests/deploy_dags/`.",
        "",
        f"Run on {time.strftime('%Y-%m-%d')}: passed, {total:.0f} s from start to teardown, on {_cores()} cores.",
        "",
        "| version | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in versions.items()),
        "",
        "## Scenarios",
        "",
        "| # | scenario | result | seconds | figures |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        figures = "; ".join(f"{k}: {v}" for k, v in r.figures.items())
        lines.append(f"| {r.number} | {r.title} | {'pass' if r.passed else 'FAIL'} | {r.seconds:.0f} | {figures} |")
    for r in results:
        lines += ["", f"## Scenario {r.number}: {r.title}", "", *r.details]
    lines += [
        "",
        "## Startup (seconds from the start of the check, unless marked as a duration)",
        "",
        "| step | seconds |",
        "|---|---|",
        *(f"| {step} | {seconds:.1f} |" for step, seconds in timings.items()),
        "",
        "Celery tasks run per worker process: " + ", ".join(f"{n} {c}" for n, c in workers.items()) + ".",
        "",
        "## Emulator requests over the whole run",
        "",
        "| request | count |",
        "|---|---|",
        *(f"| `{route}` | {count} |" for route, count in sorted(requests.items(), key=lambda kv: (-kv[1], kv[0]))),
        "",
    ]
    path.write_text("\n".join(lines))


def summary_block(results: list[ScenarioResult], total: float) -> list[str]:
    """The summary lines (``docs/deploying.md``): one per scenario, with its figures."""
    lines = [f"Last full run: {time.strftime('%Y-%m-%d')}, passed in {total:.0f} s on {_cores()} cores.", ""]
    for r in results:
        figures = "; ".join(f"{k}: {v}" for k, v in r.figures.items())
        lines.append(f"- **{r.number}. {r.title}**: {figures}.")
    return lines


def update_summary(path: Path, results: list[ScenarioResult], total: float) -> None:
    """Rewrite the summary page between :data:`BEGIN` and :data:`END` (both must be there)."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path}: the deploy-check markers are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + "\n" + "\n".join(summary_block(results, total)) + "\n" + END + tail)


def _cores() -> int:
    import os

    return os.cpu_count() or 0
