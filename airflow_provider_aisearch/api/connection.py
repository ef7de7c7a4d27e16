"""The connection: what a request needs from an Airflow ``cloudflare_aisearch`` connection.

:class:`ConnectionInfo` reads the base URL, account, namespace and credentials (built without
network access, the secret never in its ``repr``) and gives the auth headers of exactly one scheme.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch import CONN_TYPE, __version__
from airflow_provider_aisearch.api.paths import validate_choice
from airflow_provider_aisearch.exceptions import AISearchError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_NAMESPACE",
    "DEFAULT_R2_NAMESPACE",
    "R2_NAMESPACES",
    "R2_NAMESPACE_EXTRA",
    "USER_AGENT",
    "ConnectionInfo",
    "validate_r2_namespace",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_NAMESPACE = "default"
USER_AGENT = f"airflow-provider-aisearch/{__version__}"
#: The connection extra that chooses how lineage names R2 buckets.
R2_NAMESPACE_EXTRA = "lineage_r2_namespace"
#: ``"r2"``: ``r2://<account_id>`` / ``<bucket>``; ``"s3"``: ``s3://<bucket>`` / ``/``.
R2_NAMESPACES = ("r2", "s3")
DEFAULT_R2_NAMESPACE = "r2"


def validate_r2_namespace(value: object) -> str:
    """
    Check a ``lineage_r2_namespace`` setting (``None`` or ``""``: the default).

    :raises ValueError: naming ``lineage_r2_namespace``, not one of :data:`R2_NAMESPACES`.
    """
    if value is None or value == "":
        return DEFAULT_R2_NAMESPACE
    return validate_choice(R2_NAMESPACE_EXTRA, value, R2_NAMESPACES)


def _extra_value(extra: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    for candidate in (key, f"extra__{CONN_TYPE}__{key}"):
        if candidate in extra:
            return True, extra[candidate]
    return False, None


@dataclass(frozen=True)
class ConnectionInfo:
    """
    What a request needs from an Airflow connection. Built without network access.

    ``repr`` never shows the secret.

    :param conn_id: The Airflow connection id (named in error messages).
    :param base_url: API base URL including its path, without a trailing slash.
    :param account_id: Cloudflare account id.
    :param namespace: AI Search namespace, or ``None`` for the legacy un-namespaced paths.
    :param email: Account email for the legacy Global API Key scheme, else ``None``.
    :param lineage_r2_namespace: The ``lineage_r2_namespace`` extra as set (``None``: unset); checked by
        :meth:`r2_namespace` when lineage needs it, so a bad value never fails a request.
    """

    conn_id: str
    base_url: str
    account_id: str | None
    namespace: str | None
    email: str | None
    secret: str = field(repr=False)
    lineage_r2_namespace: object = None

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any] | None = None) -> ConnectionInfo:
        """
        Read a ``cloudflare_aisearch`` connection.

        :param conn: The Airflow connection.
        :param extra: The connection's parsed extra, when already available (async lookups).
        """
        if extra is None:
            extra = conn.extra_dejson
        conn_id = conn.conn_id or "<unnamed>"
        host = (conn.host or "").strip()
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            base_url = host.rstrip("/")  # JSON form: the full base URL, verbatim
        else:
            # URI form splits the URL into host, port and schema (path).
            port = f":{conn.port}" if conn.port else ""
            schema = (conn.schema or "").strip("/")
            base_url = f"https://{host.rstrip('/')}{port}" + (f"/{schema}" if schema else "")
        found, account_id = _extra_value(extra, "account_id")
        account = str(account_id).strip() if found and account_id not in (None, "") else None
        found, namespace = _extra_value(extra, "namespace")
        if not found or namespace == "":
            ns: str | None = DEFAULT_NAMESPACE
        elif namespace is None:
            ns = None
        else:
            ns = str(namespace).strip()
        email = (conn.login or "").strip() or None
        secret = (conn.password or "").strip()
        r2_namespace = _extra_value(extra, R2_NAMESPACE_EXTRA)[1]
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            account_id=account,
            namespace=ns,
            email=email,
            secret=secret,
            lineage_r2_namespace=r2_namespace,
        )

    def auth_headers(self) -> dict[str, str]:
        """Headers of exactly one auth scheme: Bearer token, or X-Auth-Email + X-Auth-Key."""
        if self.email:
            return {"X-Auth-Email": self.email, "X-Auth-Key": self.secret}
        return {"Authorization": f"Bearer {self.secret}"}

    def require_account_id(self) -> str:
        """:raises AISearchError: the connection has no ``account_id`` extra."""
        if not self.account_id:
            raise AISearchError(
                f"Connection {self.conn_id!r} has no account_id: set the 'account_id' field "
                '(extra {"account_id": "..."}) to your Cloudflare account id'
            )
        return self.account_id

    def r2_namespace(self) -> str:
        """
        How lineage names R2 buckets: ``"r2"`` (default) or ``"s3"``.

        :raises ValueError: naming ``lineage_r2_namespace``, a value that is neither.
        """
        return validate_r2_namespace(self.lineage_r2_namespace)

    def require_secret(self) -> str:
        """:raises AISearchError: the connection has no token / key."""
        if not self.secret:
            what = "Global API Key" if self.email else "API token"
            raise AISearchError(f"Connection {self.conn_id!r} has no {what}: set it in the password field")
        return self.secret
