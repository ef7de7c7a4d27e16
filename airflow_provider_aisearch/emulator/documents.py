"""Documents: the real text an emulated instance holds, which its items are and its search reads.

An instance given ``documents={key: text}`` (:meth:`DocumentState.add_instance`) holds those
documents in the emulator's :class:`DocumentStore`; from then on its items ARE its documents
(their keys, in key order, instead of the generated ``docs/file-0001.md`` ones), a job moves them
``queued -> running -> completed`` as it moves any item (:mod:`.items`), and the search
(:mod:`.search_endpoints`) reads the text of the completed ones. The store is the one place
documents live: anything that adds an item with content (an upload) puts it here too
(:meth:`DocumentStore.put`), and the items list, the stats and the search follow.

:func:`load_documents` reads a folder's ``.md`` / ``.txt`` files as ``{relative POSIX path: text}``
(the command line's ``--documents DIR``).
"""

from __future__ import annotations

import pathlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aisearch.emulator.state import JobState

__all__ = ["DOCUMENT_SUFFIXES", "Document", "DocumentState", "DocumentStore", "load_documents"]

#: The files ``--documents DIR`` loads.
DOCUMENT_SUFFIXES = (".md", ".txt")


@dataclass(frozen=True)
class Document:
    """
    One document of an instance.

    :param key: Its item key (a path such as ``guides/tokens.md``).
    :param text: Its content.
    :param metadata: Custom metadata (filterable; ``folder`` and ``filename`` are added from the key).
    :param timestamp: When it was last modified (epoch seconds).
    """

    key: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0

    @property
    def folder(self) -> str:
        """The key's folder as Cloudflare reports it: ``guides/`` for ``guides/tokens.md``, ``""`` at the top."""
        head = posixpath.dirname(self.key)
        return f"{head}/" if head else ""

    def item_metadata(self) -> dict[str, Any]:
        """The metadata a search chunk's ``item`` carries (and filters match): built-in, then custom, fields."""
        return {
            "folder": self.folder,
            "filename": posixpath.basename(self.key),
            "timestamp": int(self.timestamp * 1000),
            **self.metadata,
        }


class DocumentStore:
    """
    Every instance's documents, by ``(namespace, instance id)`` then key. Callers hold the emulator's lock.

    An instance is in the store once it was given documents (even none): its items are then its documents.
    """

    def __init__(self) -> None:
        self._by_instance: dict[tuple[str, str], dict[str, Document]] = {}

    def holds(self, namespace: str, instance_id: str) -> bool:
        """Whether the instance's items are documents (it was given some, or an empty set)."""
        return (namespace, instance_id) in self._by_instance

    def ensure(self, namespace: str, instance_id: str) -> None:
        """Make the instance's items its documents (none yet)."""
        self._by_instance.setdefault((namespace, instance_id), {})

    def put(
        self,
        namespace: str,
        instance_id: str,
        key: str,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        timestamp: float = 0.0,
    ) -> Document:
        """Add or replace the document ``key`` of the instance."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"a document key must be a non-empty string, got {key!r}")
        if not isinstance(text, str):
            raise ValueError(f"document {key!r}: text must be a string, got {type(text).__name__}")
        document = Document(key, text, dict(metadata or {}), timestamp)
        self._by_instance.setdefault((namespace, instance_id), {})[key] = document
        return document

    def remove(self, namespace: str, instance_id: str, key: str) -> bool:
        """Remove the document ``key``; whether it was there."""
        return self._by_instance.get((namespace, instance_id), {}).pop(key, None) is not None

    def get(self, namespace: str, instance_id: str, key: str) -> Document | None:
        """The document ``key``, or ``None``."""
        return self._by_instance.get((namespace, instance_id), {}).get(key)

    def documents(self, namespace: str, instance_id: str) -> list[Document]:
        """The instance's documents, in key order."""
        docs = self._by_instance.get((namespace, instance_id), {})
        return [docs[key] for key in sorted(docs)]

    def keys(self, namespace: str, instance_id: str) -> list[str]:
        """The instance's document keys, in order."""
        return sorted(self._by_instance.get((namespace, instance_id), {}))


class DocumentState(JobState):
    """The instances' documents (a mixin of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`)."""

    _documents: DocumentStore

    def add_instance(
        self,
        instance_id: str,
        *,
        namespace: str = "default",
        documents: Mapping[str, str] | None = None,
        document_metadata: Mapping[str, Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        """
        Create an instance (see :meth:`JobState.add_instance`), optionally holding real documents.

        :param documents: ``{key: text}``: the instance's items are these documents (``items`` is ignored).
        :param document_metadata: ``{key: {field: value}}``: custom metadata of some documents (filterable).
        :param options: ``type``, ``source``, ``paused``, ``sync_interval``, ``items``.
        """
        if documents is None:
            if document_metadata:
                raise ValueError("document_metadata needs documents")
            super().add_instance(instance_id, namespace=namespace, **options)
            return
        if not isinstance(documents, Mapping):
            raise ValueError(f"documents must be a mapping of key -> text, got {type(documents).__name__}")
        extra = sorted(set(document_metadata or {}) - set(documents))
        if extra:
            raise ValueError(f"document_metadata names keys that are not documents: {extra}")
        options["items"] = len(documents)
        with self._lock:
            created = self._instance(namespace, instance_id) is None
            super().add_instance(instance_id, namespace=namespace, **options)
            if created:
                self.add_documents(instance_id, documents, namespace=namespace, metadata=document_metadata)

    def add_documents(
        self,
        instance_id: str,
        documents: Mapping[str, str],
        *,
        namespace: str = "default",
        metadata: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """
        Add (or replace) documents of an existing instance; its items become its documents.

        :param documents: ``{key: text}``.
        :param metadata: ``{key: {field: value}}``: custom metadata of some of them.
        """
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            now = self.clock()
            self._documents.ensure(namespace, instance_id)
            for key, text in documents.items():
                self._documents.put(
                    namespace, instance_id, key, text, metadata=(metadata or {}).get(key), timestamp=now
                )
            inst.item_count = len(self._documents.keys(namespace, instance_id))


def load_documents(folder: str | pathlib.Path) -> dict[str, str]:
    """
    Every ``.md`` / ``.txt`` file under ``folder``, as ``{relative path with '/' separators: text}``.

    :raises ValueError: ``folder`` is not a directory.
    """
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise ValueError(f"documents folder {str(folder)!r} is not a directory")
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix.lower() in DOCUMENT_SUFFIXES
    }
