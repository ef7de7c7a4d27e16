"""The asset URI of an AI Search instance: ``cloudflare-aisearch://<account_id>/<namespace>/<instance_id>``.

Registered in the provider info (``asset-uris``; ``dataset-uris`` for Airflow 2.11), so Airflow
normalises and validates every ``Asset`` of this scheme with :func:`sanitize_uri` when a DAG is
parsed: a malformed account id, namespace or instance id is a DAG import error, not a silent
second asset. The account id (32 hexadecimal characters) is lowercased; namespace and instance id
must already match Cloudflare's patterns (:func:`~airflow_provider_aisearch.api.validate_namespace`,
:func:`~airflow_provider_aisearch.api.validate_instance_id`).

One asset per instance: the event trigger's watcher and the list operator's asset events both
describe "jobs of this instance ended". Define an asset with a watcher in one DAG file only:
Airflow keys assets by name and URI, and each parse of a file that defines the same asset without
the watcher would remove it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from airflow_provider_aisearch.api import validate_instance_id, validate_namespace

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset

__all__ = ["SCHEME", "InstanceRef", "create_asset", "instance_uri", "parse_instance_uri", "sanitize_uri"]

#: The URI scheme (Airflow lowercases schemes; ``-`` is allowed in one, ``_`` is not).
SCHEME = "cloudflare-aisearch"
_ACCOUNT_RE = re.compile(r"[0-9a-f]{32}")


class InstanceRef(NamedTuple):
    """The parts of an instance URI."""

    account_id: str
    namespace: str
    instance_id: str


def _validate_account_id(account_id: object) -> str:
    if not isinstance(account_id, str) or not _ACCOUNT_RE.fullmatch(account_id.lower()):
        raise ValueError(f"account_id must be 32 hexadecimal characters (a Cloudflare account id), got {account_id!r}")
    return account_id.lower()


def instance_uri(account_id: str, namespace: str, instance_id: str) -> str:
    """
    The asset URI of an instance, validated and normalised.

    :param account_id: Cloudflare account id (32 hexadecimal characters).
    :param namespace: AI Search namespace (``default`` unless you created others).
    :param instance_id: AI Search instance id.
    :raises ValueError: naming the invalid part.
    """
    ref = InstanceRef(
        _validate_account_id(account_id), validate_namespace(namespace), validate_instance_id(instance_id)
    )
    return f"{SCHEME}://{ref.account_id}/{ref.namespace}/{ref.instance_id}"


def _parts(parsed: SplitResult) -> InstanceRef:
    if parsed.scheme.lower() != SCHEME:
        raise ValueError(f"an AI Search instance URI starts with {SCHEME}://, got {parsed.scheme!r}")
    if parsed.username or parsed.password or parsed.port or parsed.query or parsed.fragment:
        raise ValueError(f"{SCHEME}:// URIs take no user, port, query or fragment")
    segments = parsed.path.strip("/").split("/") if parsed.path.strip("/") else []
    if len(segments) != 2:
        raise ValueError(
            f"an AI Search instance URI is {SCHEME}://<account_id>/<namespace>/<instance_id>, got path {parsed.path!r}"
        )
    return InstanceRef(
        _validate_account_id(parsed.hostname or parsed.netloc),
        validate_namespace(segments[0]),
        validate_instance_id(segments[1]),
    )


def parse_instance_uri(uri: str) -> InstanceRef:
    """
    Account id, namespace and instance id of an instance URI.

    :raises ValueError: ``uri`` is not a valid ``cloudflare-aisearch://`` URI.
    """
    return _parts(urlsplit(uri))


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Airflow's normaliser for the scheme (``asset-uris`` handler): validate, lowercase the account id.

    :raises ValueError: naming the invalid part (Airflow reports it as a DAG import error).
    """
    ref = _parts(uri)
    return uri._replace(scheme=SCHEME, netloc=ref.account_id, path=f"/{ref.namespace}/{ref.instance_id}")


def create_asset(*, account_id: str, namespace: str, instance_id: str, extra: dict[str, Any] | None = None) -> Asset:
    """
    An ``Asset`` for an instance (the provider info's ``factory``).

    :param account_id: Cloudflare account id.
    :param namespace: AI Search namespace.
    :param instance_id: AI Search instance id.
    :param extra: The asset's ``extra``.
    """
    from airflow.providers.common.compat.sdk import Asset

    return Asset(instance_uri(account_id, namespace, instance_id), extra=extra)
