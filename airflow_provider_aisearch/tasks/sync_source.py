"""A folder sync's source: a local folder or an ``ObjectStoragePath`` URI, its matching files and their bytes.

:func:`open_source` turns the operator's ``source`` into a folder (a :class:`pathlib.Path`, or Airflow's
``ObjectStoragePath`` for a URI such as ``file:///data/docs`` or ``s3://aws_conn@bucket/docs``) and checks
that it is one; :func:`list_files` walks it and keeps the files whose relative path matches the
pattern (sorted, so every try sees the same order), each with its item key (checked against
Cloudflare's 128-character limit before anything is sent). A directory that cannot be listed fails
the sync: its files would otherwise look removed. :func:`read_file` reads one file; a file that
cannot be read is that file's failure only.
"""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_aisearch.api.item_operations import UPLOAD_MAX_BYTES
from airflow_provider_aisearch.clients.compat import object_storage_path_class
from airflow_provider_aisearch.models.instances import redact_url
from airflow_provider_aisearch.tasks.sync_plan import item_key

__all__ = ["SourceFile", "UnreadableFileError", "list_files", "open_source", "read_file"]


class UnreadableFileError(Exception):
    """One file of the source could not be read (or is over the upload's size limit): reported for it alone."""


@dataclass(frozen=True)
class SourceFile:
    """
    One matching file of the source.

    :param key: Its item key (``key_prefix`` + relative path).
    :param relative: Its path relative to the source, ``/``-separated.
    :param path: The file (a ``pathlib.Path`` or an ``ObjectStoragePath``), handed to a ``metadata`` callable.
    """

    key: str
    relative: str
    path: Any


def open_source(source: object) -> Any:
    """
    The source folder: a ``pathlib.Path`` for a local path, an ``ObjectStoragePath`` for a URI (or as given).

    :raises ValueError: naming ``source``: not a path, a URI or an ``ObjectStoragePath``.
    :raises FileNotFoundError: naming ``source``: it does not exist.
    :raises NotADirectoryError: naming ``source``: it is not a folder.
    """
    storage_path = object_storage_path_class()
    if isinstance(source, storage_path):
        folder: Any = source
    elif isinstance(source, str) and "://" in source:
        try:
            folder = storage_path(source)
        except ValueError as exc:
            raise ValueError(f"source {redact_url(source)!r}: {exc}") from None
    elif isinstance(source, (str, os.PathLike)) and str(source).strip():
        folder = pathlib.Path(source)
    else:
        raise ValueError(f"source must be a folder path, a URI or an ObjectStoragePath, got {source!r}")
    try:
        fs = getattr(folder, "fs", None)
    except ValueError as exc:  # no filesystem registered for the scheme: its provider is not installed
        raise ValueError(f"source {redact_url(str(source))!r}: {exc}") from None
    if fs is not None and hasattr(fs, "invalidate_cache"):
        # fsspec caches listings and ETags per filesystem, for the process's life: a second sync in the
        # same process (dag.test, a long-lived worker) would see removed files and fail reading changed ones.
        fs.invalidate_cache()
    try:
        exists, is_dir = folder.exists(), folder.is_dir()
    except OSError as exc:
        raise FileNotFoundError(f"source {redact_url(str(source))!r} cannot be read: {exc}") from None
    except ValueError as exc:  # e.g. no filesystem registered for the scheme (its provider is not installed)
        raise ValueError(f"source {redact_url(str(source))!r}: {exc}") from None
    if not exists:
        raise FileNotFoundError(f"source {redact_url(str(source))!r} does not exist")
    if not is_dir:
        raise NotADirectoryError(f"source {redact_url(str(source))!r} is not a folder")
    return folder


def _walk(folder: Any, prefix: str) -> list[tuple[str, Any]]:
    try:
        children = sorted(folder.iterdir(), key=lambda child: child.name)
    except OSError as exc:  # its files would look removed: fail the sync instead
        raise OSError(f"source folder {str(folder)!r} cannot be listed: {exc}") from None
    found: list[tuple[str, Any]] = []
    for child in children:
        relative = prefix + child.name
        if isinstance(child, pathlib.Path) and child.is_symlink() and child.is_dir():
            continue  # a linked folder could loop; link the files, not folders
        if child.is_dir():
            found.extend(_walk(child, relative + "/"))
        elif child.is_file():
            found.append((relative, child))
    return found


def list_files(folder: Any, pattern: re.Pattern[str], key_prefix: str) -> list[SourceFile]:
    """
    The source's files matching ``pattern``, sorted by relative path, with their item keys.

    :raises ValueError: a file's key is over Cloudflare's limit (naming every such file).
    :raises OSError: a folder of the source cannot be listed.
    """
    files, bad = [], []
    for relative, path in _walk(folder, ""):
        if not pattern.match(relative):
            continue
        try:
            files.append(SourceFile(item_key(key_prefix, relative), relative, path))
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{len(bad)} file(s) cannot be uploaded under their keys: " + "; ".join(bad[:5]) + more)
    return files


def read_file(file: SourceFile) -> bytes:
    """
    The file's bytes.

    :raises UnreadableFileError: it cannot be read, or is over the upload's 4 MB.
    """
    try:
        size = file.path.stat().st_size
    except (OSError, AttributeError, TypeError):
        size = None
    if size is not None and size > UPLOAD_MAX_BYTES:
        raise UnreadableFileError(f"{size} bytes, over the upload's limit of {UPLOAD_MAX_BYTES} bytes")
    try:
        content: bytes = file.path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read: {type(exc).__name__}: {exc}") from None
    if len(content) > UPLOAD_MAX_BYTES:
        raise UnreadableFileError(f"{len(content)} bytes, over the upload's limit of {UPLOAD_MAX_BYTES} bytes")
    return content
