"""
The names the provider needs that older ``apache-airflow-providers-common-compat`` releases lack.

The provider supports common-compat >= 1.20.0, because 1.20.0 is the newest release that Python 3.10 can
install (1.21.0 and later require Python >= 3.11). Everything else comes straight from common-compat;
the names below came later than 1.20.0, so this module takes them from common-compat when it has them
and otherwise from where Airflow itself keeps them (the same places common-compat looks):

- ``mask_secret`` (in ``common.compat.sdk`` after 1.20): Airflow 3's ``airflow.sdk.log`` or its older home
  ``airflow.sdk.execution_time.secrets_masker``, Airflow 2's ``airflow.utils.log.secrets_masker``.
- ``get_async_connection`` and ``get_async_extra_dejson`` (``common.compat.connection``; 1.23 has the pair,
  1.20 only the first): read a connection and its extra from an event loop. Before Airflow 3.3.2,
  ``BaseHook.aget_connection`` and
  ``Connection.extra_dejson`` mask secrets with a *synchronous* call to the supervisor, which deadlocks
  when another async call is in flight (``DeadlockImminentError``); common-compat 1.20's
  ``get_async_connection`` still calls ``aget_connection`` there. The fallback reads both in a worker thread
  unless Airflow has the asynchronous masking (``Connection.aextra_dejson``, Airflow 3.3.2+).

- ``object_storage_path_class``: Airflow's ``ObjectStoragePath`` (``airflow.sdk`` on Airflow 3,
  ``airflow.io.path`` on 2.11; common-compat's ``sdk`` maps it in later releases), imported on first use
  (the folder sync's ``source``).

Every use in the provider imports these from here, so raising the floor one day deletes this module's
fallbacks and nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection, mask_secret

__all__ = ["get_async_connection", "get_async_extra_dejson", "mask_secret", "object_storage_path_class"]


def _first_found(name: str, *modules: str) -> Any:
    """``name`` from the first of ``modules`` that has it."""
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"cannot import {name!r} from any of {', '.join(modules)}")


if not TYPE_CHECKING:
    mask_secret = _first_found(
        "mask_secret",
        "airflow.providers.common.compat.sdk",
        "airflow.sdk.log",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    )


async def get_async_connection(conn_id: str) -> Connection:
    """
    Read a connection from an event loop without blocking it (common-compat's ``get_async_connection``).

    :param conn_id: The connection id.
    """
    from airflow.providers.common.compat import connection

    if hasattr(connection, "get_async_extra_dejson"):  # common-compat 1.23+: its pair, with the 3.3.2 fix
        return await connection.get_async_connection(conn_id)
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.compat.sdk import Connection as _Connection

    if hasattr(_Connection, "aextra_dejson"):  # Airflow 3.3.2+: aget_connection masks asynchronously
        return await BaseHook.aget_connection(conn_id=conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id=conn_id)


async def get_async_extra_dejson(conn: Connection) -> dict[str, Any]:
    """
    A connection's extra as a dict, read from an event loop without blocking it (common-compat's).

    :param conn: The connection, from :func:`get_async_connection`.
    """
    from airflow.providers.common.compat import connection

    if hasattr(connection, "get_async_extra_dejson"):  # common-compat 1.23+
        return await connection.get_async_extra_dejson(conn)
    if hasattr(conn, "aextra_dejson"):  # Airflow 3.3.2+
        extra: dict[str, Any] = await conn.aextra_dejson()
        return extra
    from asgiref.sync import sync_to_async

    return await sync_to_async(lambda: conn.extra_dejson)()


def object_storage_path_class() -> type[Any]:
    """Airflow's ``ObjectStoragePath`` class (Airflow 3: ``airflow.sdk``; 2.11: ``airflow.io.path``)."""
    cls: type[Any] = _first_found(
        "ObjectStoragePath", "airflow.providers.common.compat.sdk", "airflow.sdk", "airflow.io.path"
    )
    return cls
