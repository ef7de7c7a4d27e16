"""Metadata filters of a search, as Cloudflare takes them, compiled into a predicate on an item's metadata.

Two shapes are accepted:

* AI Search's (``ai_search_options.retrieval.filters``): ``{"folder": "docs/"}`` (an implicit
  ``$eq``), or ``{"field": {"$op": value, ...}}`` with ``$eq``, ``$ne``, ``$in``, ``$nin``, ``$lt``,
  ``$lte``, ``$gt``, ``$gte``; several fields must all match;
* the legacy AutoRAG one: ``{"type": "eq", "key": "folder", "value": "docs/"}`` (``eq``, ``ne``,
  ``gt``, ``gte``, ``lt``, ``lte``), or ``{"type": "and"|"or", "filters": [...]}``.

Anything else is a :class:`FilterError`, which the search answers with a 400 naming the filter.
A numeric string compares as a number with a number (``timestamp`` filters are often strings).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FilterError", "compile_filter"]

Predicate = Callable[[Mapping[str, Any]], bool]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
_LEGACY = {"eq", "ne", *_ORDER}
_OPERATORS = {f"${name}" for name in (*_LEGACY, "in", "nin")}


class FilterError(ValueError):
    """A filter the emulator (like Cloudflare) does not take."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equal(actual: Any, wanted: Any) -> bool:
    if actual == wanted and type(actual) is type(wanted):
        return True
    left, right = _number(actual), _number(wanted)
    return left is not None and right is not None and left == right and not isinstance(actual, bool)


def _compare(name: str, field: str, wanted: Any) -> Predicate:
    """One comparison of ``field`` (``name`` without ``$``) with ``wanted``."""
    if name == "eq":
        return lambda meta: field in meta and _equal(meta[field], wanted)
    if name == "ne":
        return lambda meta: not (field in meta and _equal(meta[field], wanted))
    if name in ("in", "nin"):
        if not isinstance(wanted, list):
            raise FilterError(f"filter ${name} on {field!r} takes a list, got {wanted!r}")
        inside = lambda meta: field in meta and any(_equal(meta[field], w) for w in wanted)  # noqa: E731
        return inside if name == "in" else (lambda meta: not inside(meta))
    compare = _ORDER[name]

    def ordered(meta: Mapping[str, Any]) -> bool:
        if field not in meta:
            return False
        left, right = _number(meta[field]), _number(wanted)
        if left is not None and right is not None:
            return compare(left, right)
        if isinstance(meta[field], str) and isinstance(wanted, str):
            return compare(meta[field], wanted)
        return False

    return ordered


def _legacy(spec: Mapping[str, Any]) -> Predicate:
    kind = spec.get("type")
    if kind in ("and", "or"):
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise FilterError(f"a compound filter ({kind}) needs a non-empty 'filters' list")
        predicates = [_legacy(part) if isinstance(part, Mapping) else _bad(part) for part in parts]
        combine = all if kind == "and" else any
        return lambda meta: combine(p(meta) for p in predicates)
    if kind not in _LEGACY:
        raise FilterError(f"unsupported filter type {kind!r} (comparison: {sorted(_LEGACY)}; compound: and, or)")
    key = spec.get("key")
    if not isinstance(key, str) or not key or "value" not in spec:
        raise FilterError(f"a comparison filter needs a 'key' and a 'value', got {dict(spec)!r}")
    return _compare(str(kind), key, spec["value"])


def _bad(part: Any) -> Predicate:
    raise FilterError(f"a filter must be an object, got {part!r}")


def _is_legacy(spec: Mapping[str, Any]) -> bool:
    """The AutoRAG shape: ``type`` with ``key``/``value`` or ``filters``, and nothing else."""
    return "type" in spec and ("key" in spec or "filters" in spec) and set(spec) <= {"type", "key", "value", "filters"}


def compile_filter(spec: Any) -> Predicate:
    """
    A predicate on an item's metadata for the filter ``spec``.

    :raises FilterError: the filter has an unknown operator or a malformed part.
    """
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError(f"filters must be a non-empty object, got {spec!r}")
    if _is_legacy(spec):
        return _legacy(spec)
    predicates: list[Predicate] = []
    for field, condition in spec.items():
        if field.startswith("$"):
            raise FilterError(f"unsupported filter operator {field!r} at the top level")
        if isinstance(condition, Mapping):
            if not condition:
                raise FilterError(f"filter on {field!r} has no operator")
            for op, wanted in condition.items():
                if op not in _OPERATORS:
                    raise FilterError(
                        f"unsupported filter operator {op!r} on {field!r} (supported: {sorted(_OPERATORS)})"
                    )
                predicates.append(_compare(op[1:], field, wanted))
        else:
            predicates.append(_compare("eq", field, condition))
    return lambda meta: all(p(meta) for p in predicates)
