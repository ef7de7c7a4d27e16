"""Planning a folder sync: which files to upload, which are unchanged, which stored items to delete (pure).

:func:`plan_sync` is a pure function of what the source holds (each file's key and content hash) and
what the instance stores (its items by key); it sends nothing and reads nothing, so every rule of the
sync is here, testable on its own:

- a file whose stored item carries the same content hash in its metadata (:data:`HASH_METADATA_KEY`)
  is **unchanged**, whatever the item's status (a retried task never re-sends what its first try
  stored; an item in ``error`` stays failed until its file changes);
- any other readable file is **uploaded** (new, changed, or stored without our hash);
- with ``delete_removed``, a stored item under ``key_prefix`` whose key matches ``pattern`` and that no
  file of the source has any more is **deleted**; a file that could not be read keeps its item.

Cloudflare's own ``checksum`` is not used: its algorithm is undocumented (see docs/items.md), so a
local file cannot be compared with it. The sync stores the SHA-256 of the content it uploaded in the
item's metadata instead, and compares with that.

The glob ``pattern`` is matched against each file's path relative to the source, ``/``-separated:
``*`` and ``?`` never cross a ``/``, ``[...]`` is a character class, and ``**`` as a whole path
component matches any number of directories (``**/*.md``: every Markdown file, at any depth;
``*.md``: those at the top only). :func:`compile_pattern` checks it before anything is read or sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from airflow_provider_aisearch.api.paths import ITEM_KEY_MAX_LENGTH, validate_item_key
from airflow_provider_aisearch.models.instances import Item

__all__ = [
    "DEFAULT_PATTERN",
    "HASH_METADATA_KEY",
    "SyncPlan",
    "compile_pattern",
    "content_hash",
    "item_key",
    "plan_sync",
    "validate_key_prefix",
]

#: The metadata field holding the SHA-256 hex digest of the content the sync uploaded.
HASH_METADATA_KEY = "airflow_sha256"
#: Every file, at any depth.
DEFAULT_PATTERN = "**/*"


def content_hash(content: bytes) -> str:
    """The content hash the sync stores and compares: SHA-256, hex."""
    return hashlib.sha256(content).hexdigest()


def _translate_component(part: str, pattern: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise ValueError(f"pattern {pattern!r} has a '[' without its closing ']'")
            body = part[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def compile_pattern(pattern: object) -> re.Pattern[str]:
    """
    Check a sync's glob and compile it into a regular expression over relative, ``/``-separated paths.

    :param pattern: The glob (see the module's docstring).
    :raises ValueError: naming ``pattern``: not a non-empty string, absolute, with a ``.``/``..`` or
        empty component, ``**`` inside a component, or an unclosed ``[``.
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"pattern must be a non-empty glob string, got {pattern!r}")
    if pattern.startswith("/") or "\\" in pattern or "\0" in pattern:
        raise ValueError(f"pattern must be relative to the source and use '/', got {pattern!r}")
    parts = pattern.split("/")
    regex = []
    for index, part in enumerate(parts):
        if part in ("", ".", ".."):
            raise ValueError(f"pattern {pattern!r} has an empty, '.' or '..' component")
        if part == "**":
            regex.append("(?:[^/]+/)*" if index < len(parts) - 1 else ".+")
            continue
        if "**" in part:
            raise ValueError(f"pattern {pattern!r}: '**' must be a whole path component (e.g. '**/*.md')")
        regex.append(_translate_component(part, pattern) + ("/" if index < len(parts) - 1 else ""))
    try:
        return re.compile("".join(regex) + r"\Z", re.DOTALL)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid glob: {exc}") from None


def validate_key_prefix(prefix: object) -> str:
    """
    Check ``key_prefix``: a string (empty: none) of fewer than 128 characters, without NUL.

    :raises ValueError: naming ``key_prefix``.
    """
    if not isinstance(prefix, str) or "\0" in prefix or len(prefix) >= ITEM_KEY_MAX_LENGTH:
        raise ValueError(f"key_prefix must be a string of fewer than {ITEM_KEY_MAX_LENGTH} characters, got {prefix!r}")
    return prefix


def item_key(key_prefix: str, relative: str) -> str:
    """
    The item key of a file: ``key_prefix`` + its relative path, checked as the upload checks a filename.

    :raises ValueError: the key is over Cloudflare's 128 characters (naming the file).
    """
    key = key_prefix + relative
    try:
        return validate_item_key("filename", key)
    except ValueError as exc:
        raise ValueError(f"file {relative!r}: its item key {key!r} is not accepted: {exc}") from None


@dataclass(frozen=True)
class SyncPlan:
    """
    What a sync does.

    :param upload: Keys to upload (new or changed), in source order.
    :param unchanged: Keys whose stored item carries the file's hash.
    :param delete: ``(key, item_id)`` of stored items to delete.
    """

    upload: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)


def plan_sync(
    files: Mapping[str, str | None],
    stored: Iterable[Item],
    *,
    key_prefix: str,
    matches: re.Pattern[str],
    delete_removed: bool,
) -> SyncPlan:
    """
    Plan a sync.

    :param files: Each source file's key and content hash (``None``: it could not be read; it is
        neither uploaded nor deleted).
    :param stored: The instance's items.
    :param key_prefix: The sync's key prefix (only items under it are deleted).
    :param matches: The compiled ``pattern`` (only items whose key, less the prefix, matches are deleted).
    :param delete_removed: Delete stored items that have no file any more.
    """
    by_key = {item.key: item for item in stored}
    plan = SyncPlan()
    for key, digest in files.items():
        if digest is None:
            continue
        item = by_key.get(key)
        if item is not None and (item.metadata or {}).get(HASH_METADATA_KEY) == digest:
            plan.unchanged.append(key)
        else:
            plan.upload.append(key)
    if delete_removed:
        for key, item in by_key.items():
            if key in files or not key.startswith(key_prefix):
                continue
            if matches.match(key[len(key_prefix) :]):
                plan.delete.append((key, item.id))
    return plan
