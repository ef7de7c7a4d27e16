"""The package's imports run one way, down a fixed stack of layers, and never in a circle (issue 22).

The checks read every module of ``airflow_provider_aisearch`` with ``ast`` (nothing is imported), and sort each
import of another provider module into one of three kinds:

* **module level**: runs when the module is imported;
* **lazy**: inside a function (or a lambda), runs when it is called: still a dependency, so it obeys the same
  direction; one that points up the stack needs an entry in :data:`LAZY_UPWARD` that says why;
* **typing only**: under ``if TYPE_CHECKING:``; it never runs, so it is left out (a module may name a type from
  above it, e.g. the helpers the hook hands itself to annotate ``hook: AISearchHook``).

An import of ``a.b.c`` counts as an import of ``a.b.c`` only, not of the packages ``a`` and ``a.b`` that Python
runs first (a package ``__init__`` that re-exports its own modules would otherwise be a cycle by construction).
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator, Mapping

import pytest

import airflow_provider_aisearch

PACKAGE = "airflow_provider_aisearch"
PACKAGE_DIR = pathlib.Path(airflow_provider_aisearch.__file__).parent

#: The layers, top first. A module may import modules of its own layer and of the layers below it, never above.
#: Each entry names modules or subpackages relative to the package ("" is the package's ``__init__``).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The thin re-exports that keep the older public paths working (each names why in its docstring), with the
    # operators and the sensor: nothing inside the package imports any of them.
    (
        "public paths",
        (
            "operators",
            "sensors",
            "create_operator",
            "event_trigger",
            "instances",
            "item_stats",
            "jobs",
            "polling",
            "quality",
            "ratelimit",
            "watch",
        ),
    ),
    ("tasks", ("tasks",)),  # the operators' and the sensor's work in a worker
    ("triggers", ("triggers",)),  # public: the deferred wait; re-exports the event trigger
    ("events", ("events",)),  # the event trigger, its watermark, pages and backoff
    ("waiting", ("waiting",)),  # watch, the shared poller, job filter, item stats, quality gate
    ("hooks", ("hooks",)),  # public: the sync hook
    ("clients", ("clients",)),  # transports, the async client, connection readers
    ("lineage", ("lineage",)),  # public path of the asset converters; hook and operator lineage
    ("assets and links", ("assets", "links")),  # public: asset URIs, the dashboard link
    ("core", ("api",)),  # the transport-free core: every request as a plan
    ("exceptions", ("exceptions",)),
    ("models", ("models",)),  # jobs, instances, items, timestamps
    ("entry point", ("",)),  # the package's __init__: provider info, version, connection type
    ("emulator", ("emulator",)),  # Cloudflare's side, for tests and the demo: imports nothing of the provider
]

#: Lazy imports that point up the stack, each with the reason it must. Empty: none does today.
LAZY_UPWARD: dict[tuple[str, str], str] = {}

#: The subpackages users should not import from: their ``__init__`` docstring says so.
INTERNAL = ("models", "clients", "waiting", "events", "tasks")

Edges = dict[str, dict[str, str]]  # importer -> {imported: kind}


def package_modules() -> dict[str, pathlib.Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Each import statement of a module with its kind: ``module``, ``lazy`` or ``typing``."""

    def walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.body:
                    yield from walk_statement(stmt, "typing")
                for stmt in child.orelse:
                    yield from walk_statement(stmt, kind)
                continue
            inner = "lazy" if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else kind
            yield from walk_statement(child, inner)

    def walk_statement(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, kind
        yield from walk(node, kind)

    yield from walk(tree, "module")


def _targets(node: ast.Import | ast.ImportFrom, importer: str, modules: Mapping[str, object]) -> list[str]:
    """The provider modules one import statement loads (``from a import b`` loads ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE]
    base = node.module or ""
    if node.level:  # relative: resolve against the importer's package
        is_package = str(modules.get(importer, "")).endswith("__init__.py")
        anchor = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, *([base] if base else [])])
    if base.split(".")[0] != PACKAGE:
        return []
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def import_graph(modules: Mapping[str, pathlib.Path]) -> Edges:
    """Who imports whom at run time (module-level and lazy imports; typing-only ones left out)."""
    edges: Edges = {name: {} for name in modules}
    for name, path in modules.items():
        for node, kind in _imports(ast.parse(path.read_text())):
            if kind == "typing":
                continue
            for target in _targets(node, name, modules):
                if target != name and target in modules:
                    # a module-level import of a target outranks a lazy one
                    edges[name][target] = "module" if "module" in (kind, edges[name].get(target)) else kind
    return edges


def find_cycle(edges: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One import cycle (its modules, the first repeated at the end), or ``[]`` when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return []


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` (0: top) of the layer that holds ``module``."""
    relative = module[len(PACKAGE) + 1 :] if module != PACKAGE else ""
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if relative == member or (member and relative.startswith(f"{member}.")):
                return index
    raise AssertionError(f"{module} is in no layer of LAYERS: place it there")


def test_the_scan_reads_the_whole_package() -> None:
    modules = package_modules()
    edges = import_graph(modules)
    assert len(modules) > 60
    assert sum(len(targets) for targets in edges.values()) > 150
    # the kinds are told apart: the hook reads lineage lazily, the core the models at module level
    assert edges[f"{PACKAGE}.hooks"][f"{PACKAGE}.lineage.job_lineage"] == "lazy"
    assert edges[f"{PACKAGE}.api.parse"][f"{PACKAGE}.models.jobs"] == "module"
    # typing-only imports are left out: instance_reads names the hook's type, and does not import it
    assert f"{PACKAGE}.hooks" not in edges[f"{PACKAGE}.clients.instance_reads"]


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph(package_modules()))
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b": "module"}, "b": {"c": "lazy"}, "c": {"a": "module"}, "d": {"a": "module"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "module"}, "b": {}}) == []


def test_every_module_sits_in_a_layer() -> None:
    assert sorted({layer_of(module) for module in package_modules()}) == list(range(len(LAYERS)))


@pytest.mark.parametrize("kind", ["module", "lazy"])
def test_imports_run_down_the_layers(kind: str) -> None:
    upward = {
        (importer, target): f"{LAYERS[layer_of(importer)][0]} -> {LAYERS[layer_of(target)][0]}"
        for importer, targets in import_graph(package_modules()).items()
        for target, found in targets.items()
        if found == kind and layer_of(target) < layer_of(importer)
    }
    allowed = LAZY_UPWARD if kind == "lazy" else {}
    assert {edge: where for edge, where in upward.items() if edge not in allowed} == {}
    assert [edge for edge in allowed if edge not in upward] == []  # an entry no import needs any more goes


def test_nothing_inside_imports_a_public_re_export() -> None:
    # The older public paths are for DAG code; the package itself imports where the code lives.
    top = [f"{PACKAGE}.{name}" for name in LAYERS[0][1]]
    importers = {
        importer: sorted(set(targets) & set(top))
        for importer, targets in import_graph(package_modules()).items()
        if set(targets) & set(top)
    }
    assert importers == {}


def test_internal_subpackages_say_so() -> None:
    docs = {name: ast.get_docstring(ast.parse((PACKAGE_DIR / name / "__init__.py").read_text())) for name in INTERNAL}
    assert {name: doc for name, doc in docs.items() if not (doc or "").startswith("Internal:")} == {}
