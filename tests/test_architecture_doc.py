"""docs/architecture.md names every module of the package, and the README links it."""

from __future__ import annotations

import pathlib

import airflow_provider_aisearch

PACKAGE_DIR = pathlib.Path(airflow_provider_aisearch.__file__).parent
REPO = PACKAGE_DIR.parent


def test_the_architecture_page_has_a_line_for_every_module() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    modules = sorted(str(path.relative_to(PACKAGE_DIR)) for path in PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 30
    assert [module for module in modules if f"| `{module}` |" not in page] == []


def test_the_readme_links_the_architecture_page() -> None:
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text()
