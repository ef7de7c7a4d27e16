"""The core (``airflow_provider_aisearch.api``) as a package: one concept per module, one way down.

Issue 12 split ``api.py`` into modules. These checks read the import statements (including those
under ``TYPE_CHECKING`` and inside functions), so a later change cannot quietly make the core
depend on a layer above it, or make two of its modules import each other.
"""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
import subprocess
import sys

import airflow_provider_aisearch.api as api

PACKAGE = "airflow_provider_aisearch"
API_DIR = pathlib.Path(api.__file__).parent
#: What the core may import from the rest of the provider: the models (jobs, instances, their timestamps), the
#: exceptions and the package root (version, connection type). Nothing that holds a transport.
CORE_MAY_IMPORT = {
    PACKAGE,
    f"{PACKAGE}.models",
    f"{PACKAGE}.models.jobs",
    f"{PACKAGE}.models.timestamps",
    f"{PACKAGE}.models.instances",
    f"{PACKAGE}.models.search",
    f"{PACKAGE}.exceptions",
}

#: Where importers live: the package, its tests, the benchmarks, scripts and example DAGs.
ROOT = API_DIR.parents[1]
IMPORTER_DIRS = [PACKAGE, "tests", "bench", "scripts", "example_dags"]


def _api_modules() -> dict[str, pathlib.Path]:
    return {
        f"{PACKAGE}.api" if path.stem == "__init__" else f"{PACKAGE}.api.{path.stem}": path
        for path in sorted(API_DIR.glob("*.py"))
    }


def _imports(path: pathlib.Path) -> set[str]:
    """The provider modules a file imports (``from x import y`` counts ``x.y`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            for alias in node.names:
                if (API_DIR / f"{alias.name}.py").exists() and node.module == f"{PACKAGE}.api":
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
    return found


def _names_imported_from_api() -> dict[str, str]:
    """Each name some file imports ``from airflow_provider_aisearch.api``, with one file that does."""
    names: dict[str, str] = {}
    for folder in IMPORTER_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == f"{PACKAGE}.api":
                    names.update(
                        {
                            alias.name: str(path.relative_to(ROOT))
                            for alias in node.names
                            if not (API_DIR / f"{alias.name}.py").exists()  # a submodule, not a re-export
                        }
                    )
    return names


def test_every_name_importers_use_still_imports_from_api() -> None:
    names = _names_imported_from_api()
    assert len(names) > 20  # the scan found the importers (hooks, triggers, operators, tests...)
    # Each is a public re-export (scripts and bench are not imported by the suite, so check by name).
    assert {name: path for name, path in names.items() if name not in api.__all__} == {}
    assert [name for name in api.__all__ if not hasattr(api, name)] == []
    # Re-exports are the objects the modules define, not copies.
    for name in api.__all__:
        value = getattr(api, name)
        home = getattr(value, "__module__", None)
        if isinstance(home, str) and home.startswith(f"{PACKAGE}.api."):
            assert getattr(importlib.import_module(home), name) is value


def test_the_core_imports_nothing_above_it() -> None:
    modules = _api_modules()
    above = {
        name: sorted(
            dep for dep in _imports(path) if not dep.startswith(f"{PACKAGE}.api") and dep not in CORE_MAY_IMPORT
        )
        for name, path in modules.items()
    }
    assert {name: deps for name, deps in above.items() if deps} == {}


def test_the_core_modules_form_a_dag() -> None:
    modules = _api_modules()
    inner = {
        name: {dep for dep in _imports(path) if dep in modules and dep != name}
        for name, path in modules.items()
        if name != f"{PACKAGE}.api"  # the package's __init__ only re-exports
    }
    done: list[str] = []
    pending = dict(inner)
    while pending:
        ready = sorted(name for name, deps in pending.items() if deps <= set(done))
        assert ready, f"import cycle among {sorted(pending)}"
        done.extend(ready)
        for name in ready:
            del pending[name]
    # Every module states its one concept in an opening docstring.
    assert [name for name, path in modules.items() if not ast.get_docstring(ast.parse(path.read_text()))] == []


def test_importing_the_core_loads_no_module_above_it() -> None:
    child = (
        "import json, sys\n"
        "import airflow_provider_aisearch.api\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow_provider_aisearch')))"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    outside = [m for m in loaded if not m.startswith(f"{PACKAGE}.api") and m not in CORE_MAY_IMPORT]
    assert outside == []
