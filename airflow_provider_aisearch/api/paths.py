"""Validation and URL paths: every argument that becomes part of a URL is checked here, and every path is built here.

Input is checked before any request (a ``ValueError`` naming the parameter); :func:`instance_path`
is the only place an instance URL path is made (:func:`jobs_path` extends it), and :data:`UNSET`
is the "use the connection's namespace" sentinel every operation takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum
from urllib.parse import quote

__all__ = [
    "DESCRIPTION_MAX_LENGTH",
    "INSTANCE_ENDPOINTS",
    "ITEMS_MAX_PER_PAGE",
    "JOBS_MAX_PER_PAGE",
    "LOGS_MAX_PER_PAGE",
    "UNSET",
    "check_path_form",
    "instance_path",
    "jobs_path",
    "path_segment",
    "validate_choice",
    "validate_description",
    "validate_instance_id",
    "validate_namespace",
    "validate_page",
    "validate_per_page",
]

JOBS_MAX_PER_PAGE = 50
#: The items list's ``per_page`` limit. Cloudflare documents none for items (the SDK 5.9 types give no
#: maximum); its instance and namespace lists allow 100, so the provider asks for at most that.
ITEMS_MAX_PER_PAGE = 100
LOGS_MAX_PER_PAGE = 500
DESCRIPTION_MAX_LENGTH = 255
SEGMENT_MAX_LENGTH = 256

#: Cloudflare's instance id pattern (OpenAPI 2026-08): no leading, trailing or doubled ``-``.
_INSTANCE_ID_RE = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")
INSTANCE_ID_MAX_LENGTH = 64
#: Cloudflare's namespace name pattern (OpenAPI 2026-08): 1-28 characters, ``-`` only inside.
_NAMESPACE_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,26}[a-z0-9])?")


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "<the connection's namespace>"

    __str__ = __repr__


#: Sentinel for "use the connection's namespace" (``None`` means the legacy un-namespaced paths).
UNSET = _Unset.UNSET


def validate_instance_id(instance_id: object) -> str:
    """
    Check an AI Search instance id as Cloudflare does: ``^[a-z0-9_]+(?:-[a-z0-9_]+)*$``, 1-64 characters.

    :raises ValueError: naming ``instance_id``.
    """
    if (
        not isinstance(instance_id, str)
        or len(instance_id) > INSTANCE_ID_MAX_LENGTH
        or not _INSTANCE_ID_RE.fullmatch(instance_id)
    ):
        raise ValueError(
            "instance_id must be 1-64 characters of lowercase letters, digits, '_' and single '-' between them "
            f"(no leading, trailing or doubled '-'), got {_preview(instance_id)}"
        )
    return instance_id


def validate_namespace(namespace: object) -> str:
    """
    Check a namespace name as Cloudflare does: ``^[a-z0-9]([a-z0-9-]{0,26}[a-z0-9])?$``.

    :raises ValueError: naming ``namespace``.
    """
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(
            "namespace must be 1-28 characters of lowercase letters, digits and '-', starting and ending "
            f"with a letter or digit, got {_preview(namespace)}"
        )
    return namespace


def path_segment(name: str, value: object) -> str:
    """
    Percent-encode ``value`` as exactly one URL path segment.

    Empty, whitespace-only, over-long values and the dot segments ``.`` / ``..`` (which HTTP
    clients collapse) are rejected, so no value can change the path's shape.

    :param name: Parameter name, for the error message.
    :raises ValueError: naming the parameter.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty or whitespace, got {value!r}")
    if value in (".", ".."):
        raise ValueError(f"{name} must not be {value!r}")
    if len(value) > SEGMENT_MAX_LENGTH:
        raise ValueError(f"{name} is {len(value)} characters long; at most {SEGMENT_MAX_LENGTH} are allowed")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    return quote(value, safe="")


def validate_per_page(per_page: object, maximum: int, name: str = "per_page") -> int:
    """:raises ValueError: unless ``per_page`` is an int in ``1..maximum``."""
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= maximum:
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, got {per_page!r}")
    return per_page


def validate_page(page: object) -> int:
    """:raises ValueError: unless ``page`` is an int >= 1."""
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be an integer >= 1, got {page!r}")
    return page


def validate_description(description: object) -> str | None:
    """:raises ValueError: unless ``description`` is ``None`` or a string of at most 255 characters."""
    if description is None:
        return None
    if not isinstance(description, str):
        raise ValueError(f"description must be a string or None, got {type(description).__name__}")
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ValueError(
            f"description is {len(description)} characters long; Cloudflare allows at most {DESCRIPTION_MAX_LENGTH}"
        )
    return description


def validate_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """:raises ValueError: naming ``name`` unless ``value`` is one of ``allowed`` (a string)."""
    choices = sorted(allowed)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_preview(value)}")
    return value


#: What may follow ``/instances/{id}`` in :func:`instance_path`, and whether the legacy form has it.
INSTANCE_ENDPOINTS: dict[str | None, bool] = {
    None: True,
    "stats": True,
    "jobs": True,
    "items": False,
    "search": False,
}


def check_path_form(namespace: str | None, endpoint: str | None) -> None:
    """
    Check that ``endpoint`` exists in the path form ``namespace`` selects.

    :raises ValueError: ``endpoint`` is unknown, or (naming ``namespace``) has no legacy form and ``namespace`` is None.
    """
    if endpoint not in INSTANCE_ENDPOINTS:
        known = sorted(e for e in INSTANCE_ENDPOINTS if e)
        raise ValueError(f"endpoint must be one of {known} or None, got {endpoint!r}")
    if namespace is None and not INSTANCE_ENDPOINTS[endpoint]:
        raise ValueError(
            f"namespace must be set for the {endpoint} endpoint: Cloudflare serves it only as "
            f"/ai-search/namespaces/{{name}}/instances/{{id}}/{endpoint} (no un-namespaced form), and "
            "namespace=None selects the legacy paths; set a namespace, usually 'default'"
        )


def instance_path(account_id: str, namespace: str | None, instance_id: str, endpoint: str | None = None) -> str:
    """
    Build an instance API path (relative to the base URL), validating every part.

    With a namespace: ``/accounts/{a}/ai-search/namespaces/{ns}/instances/{i}[/{endpoint}]``; with
    ``namespace=None`` the legacy ``/accounts/{a}/ai-search/instances/{i}[/{endpoint}]``, which
    Cloudflare serves for the instance, its stats and its jobs, but not for its items or search.

    :param endpoint: ``None`` (the instance), ``"stats"``, ``"jobs"``, ``"items"`` or ``"search"``.
    :raises ValueError: naming the first invalid parameter (``namespace`` for items on the legacy form).
    """
    check_path_form(namespace, endpoint)
    path = f"/accounts/{path_segment('account_id', account_id)}/ai-search"
    if namespace is not None:
        path += f"/namespaces/{validate_namespace(namespace)}"
    path += f"/instances/{validate_instance_id(instance_id)}"
    return path if endpoint is None else f"{path}/{endpoint}"


def jobs_path(
    account_id: str,
    namespace: str | None,
    instance_id: str,
    job_id: str | None = None,
    *,
    logs: bool = False,
) -> str:
    """
    Build a jobs API path (relative to the base URL), validating every part.

    With a namespace: ``/accounts/{a}/ai-search/namespaces/{ns}/instances/{i}/jobs[/{job}[/logs]]``;
    with ``namespace=None`` the legacy ``/accounts/{a}/ai-search/instances/{i}/jobs[...]``.

    :raises ValueError: naming the first invalid parameter.
    """
    path = instance_path(account_id, namespace, instance_id, "jobs")
    if job_id is not None:
        path += f"/{path_segment('job_id', job_id)}"
        if logs:
            path += "/logs"
    elif logs:
        raise ValueError("job_id is required for the logs path")
    return path


def _preview(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
