"""Render the reliability figures (written by ``make reliability``) into docs/reliability.md's table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

START = "<!-- reliability:start -->"
END = "<!-- reliability:end -->"


def render(figures: dict[str, dict[str, object]]) -> str:
    """The markdown between the page's markers."""
    chaos = {k: v for k, v in figures.items() if "runs" in v}
    lines = [
        "| chaos runs (30% transient faults) | runs | faults injected | wrong outcomes | max requests per run |",
        "|---|---|---|---|---|",
    ]
    for name, v in sorted(chaos.items()):
        lines.append(
            f"| {name} | {v['runs']} | {v['faults_injected']} | {v['wrong_outcomes']} | {v['max_requests_per_run']} |"
        )
    total_runs = sum(int(v["runs"]) for v in chaos.values())  # type: ignore[call-overload]
    total_faults = sum(int(v["faults_injected"]) for v in chaos.values())  # type: ignore[call-overload]
    total_wrong = sum(int(v["wrong_outcomes"]) for v in chaos.values())  # type: ignore[call-overload]
    lines.append(f"| **all** | **{total_runs}** | **{total_faults}** | **{total_wrong}** | |")
    lines.append("")
    lines.append("| other checks | result |")
    lines.append("|---|---|")
    for name, v in sorted(figures.items()):
        if name in chaos:
            continue
        lines.append(f"| {name} | " + ", ".join(f"{k.replace('_', ' ')}: {val}" for k, val in sorted(v.items())) + " |")
    return "\n".join(lines)


def main(figures_path: str, page_path: str) -> None:
    figures = json.loads(Path(figures_path).read_text())
    page = Path(page_path)
    text = page.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    page.write_text(f"{before}{START}\n{render(figures)}\n{END}{after}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
