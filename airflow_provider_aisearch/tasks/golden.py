"""The golden set of a retrieval check: queries and the item keys each must find, from a list or a file.

``golden`` is a list of ``{"query": str, "expected_keys": [str, ...], "filters": {...}}`` (``filters``
optional), or the path of a ``.json``, ``.yaml`` or ``.yml`` file holding such a list. A relative path
is read from the DAG file's folder (as Airflow finds templates); the file is read when the task runs,
never while the DAG file is parsed. YAML needs PyYAML, which Airflow depends on; it is imported on use.

Every entry is checked and a bad one is a ``ValueError`` naming ``golden``, the entry's position and
the field: a missing or empty ``query``, ``expected_keys`` that is not a non-empty list of distinct
non-empty strings, ``filters`` that is not a mapping, or a key that is none of these three (a typo
such as ``expected_key`` would otherwise be ignored).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

__all__ = ["GOLDEN_SUFFIXES", "GoldenQuery", "check_golden_path", "golden_is_path", "load_golden", "parse_golden"]

#: The file types ``golden`` may name.
GOLDEN_SUFFIXES = (".json", ".yaml", ".yml")
_FIELDS = frozenset({"query", "expected_keys", "filters"})


@dataclass(frozen=True)
class GoldenQuery:
    """
    One golden query.

    :param query: The question, sent as the search's ``query``.
    :param expected_keys: The item keys it must find, distinct, in the order given.
    :param filters: Metadata filters sent with this query (``ai_search_options.retrieval.filters``), or ``None``.
    """

    query: str
    expected_keys: tuple[str, ...]
    filters: dict[str, Any] | None = None


def golden_is_path(golden: object) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``golden`` names a file (a string or a path) rather than holding the list."""
    return isinstance(golden, (str, os.PathLike))


def parse_golden(entries: object, *, source: str = "golden") -> list[GoldenQuery]:
    """
    Check a golden list and return its queries.

    :param entries: The list of entries.
    :param source: Names the list in errors (``golden``, or ``golden file <path>``).
    :raises ValueError: naming ``golden``, the entry and the field at fault.
    """
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        raise ValueError(
            f"{source} must be a list of {{'query': ..., 'expected_keys': [...]}} entries "
            f"(or the path of a .json/.yaml/.yml file holding one), got {type(entries).__name__}"
        )
    if not entries:
        raise ValueError(f"{source} holds no query: give at least one")
    return [_entry(entry, f"{source}[{index}]") for index, entry in enumerate(entries)]


def _entry(entry: object, where: str) -> GoldenQuery:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a mapping with 'query' and 'expected_keys', got {type(entry).__name__}")
    unknown = sorted(str(key) for key in entry if key not in _FIELDS)
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {unknown}: only 'query', 'expected_keys' and 'filters'")
    query = entry.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"{where}: 'query' must be a non-empty string, got {query!r}")
    keys = entry.get("expected_keys")
    if isinstance(keys, (str, bytes, Mapping)) or not isinstance(keys, Sequence) or not keys:
        raise ValueError(f"{where}: 'expected_keys' must be a non-empty list of item keys, got {keys!r}")
    for key in keys:
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{where}: 'expected_keys' holds {key!r}, not a non-empty string")
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"{where}: 'expected_keys' names {duplicates} more than once")
    filters = entry.get("filters")
    if filters is not None and not isinstance(filters, Mapping):
        raise ValueError(f"{where}: 'filters' must be a mapping or absent, got {type(filters).__name__}")
    return GoldenQuery(query, tuple(keys), None if filters is None else dict(filters))


def load_golden(golden: object, *, folder: str | os.PathLike[str] | None = None) -> list[GoldenQuery]:
    """
    The golden queries of a rendered ``golden``: the list itself, or the file it names, read now.

    :param golden: The list, or the path of a ``.json``/``.yaml``/``.yml`` file.
    :param folder: Where a relative path is read from (the DAG file's folder); ``None``: the working directory.
    :raises ValueError: naming ``golden``: a path with another suffix, a missing or unreadable file, a
        file that is not JSON/YAML, or a bad entry (:func:`parse_golden`).
    """
    if not golden_is_path(golden):
        return parse_golden(golden)
    path = Path(os.fspath(golden))
    check_golden_path(path)
    if not path.is_absolute() and folder is not None:
        path = Path(folder) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"golden: cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    source = f"golden file {str(path)!r}"
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            yaml: Any = importlib.import_module("yaml")  # PyYAML (Airflow's dependency) has no type stubs here
            data = yaml.safe_load(text)
    except ValueError as exc:  # json.JSONDecodeError
        raise ValueError(f"{source} is not valid JSON: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError (PyYAML imported above, on use)
        raise ValueError(f"{source} is not valid YAML: {exc}") from exc
    return parse_golden(data, source=source)


def check_golden_path(path: str | os.PathLike[str]) -> None:
    """
    Check that a path names a golden file by its suffix (the file itself is read when the task runs).

    :raises ValueError: naming ``golden``, for an empty path or one not ending in ``.json``/``.yaml``/``.yml``.
    """
    text = os.fspath(path)
    if not str(text).strip() or Path(text).suffix.lower() not in GOLDEN_SUFFIXES:
        raise ValueError(
            f"golden must be a list of entries or the path of a .json, .yaml or .yml file, got {str(text)!r}"
        )
