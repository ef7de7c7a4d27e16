"""AISearchSyncItemsOperator: sync a folder into a built-in-storage instance and report what became of each file.

The steps of one try, in order:

1. **Check** (before any request): the pattern, the key prefix, the source (it exists and is a
   folder), every matching file's key (Cloudflare's 128 characters).
2. **Plan** (:func:`~airflow_provider_aisearch.tasks.sync_plan.plan_sync`): the instance's items are
   listed once; each file is read and hashed (SHA-256; an unreadable file is reported in ``failed``,
   the others still sync); a file whose item carries the same hash in its metadata is unchanged.
3. **Upload** the new and changed files (``max_upload_concurrency`` at a time), each with the user's
   metadata and ``{"airflow_sha256": <hash>}``; the hook's upload is never sent twice for one call.
   **Delete** (``delete_removed``) the items under ``key_prefix`` that have no file any more; an item
   already gone (a 404: an earlier try deleted it) counts as deleted.
4. **Wait** (``wait_for_completion``) until every uploaded item (and every unchanged one still in
   flight, e.g. uploaded by a crashed earlier try) is settled: in the worker, or in the triggerer
   (:class:`~airflow_provider_aisearch.events.items_trigger.AISearchItemsTrigger`); one items list per
   interval for all of them (:mod:`~airflow_provider_aisearch.waiting.item_outcomes`).
5. **Report** (:mod:`~airflow_provider_aisearch.tasks.sync_report`): the last log lines of each
   failed item, the instance's counts, the ``max_item_errors`` gate (the item gate's semantics,
   :class:`~airflow_provider_aisearch.waiting.quality.ItemGate`, over this sync's files), and the XCom value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_aisearch.api import UNSET, _Unset, validate_instance_id
from airflow_provider_aisearch.api.item_operations import validate_metadata
from airflow_provider_aisearch.clients.compat import mask_secret
from airflow_provider_aisearch.exceptions import (
    AISearchAuthError,
    AISearchError,
    AISearchIndexQualityError,
    AISearchNotFoundError,
    AISearchSyncTimeoutError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.instances import Item, redact_url, url_secrets
from airflow_provider_aisearch.tasks.job_wait import validate_hook_params
from airflow_provider_aisearch.tasks.sync_plan import (
    DEFAULT_PATTERN,
    HASH_METADATA_KEY,
    compile_pattern,
    content_digests,
    content_hash,
    plan_sync,
    validate_key_prefix,
)
from airflow_provider_aisearch.tasks.sync_report import file_outcomes, log_item_errors
from airflow_provider_aisearch.tasks.sync_source import (
    SourceFile,
    UnreadableFileError,
    list_files,
    open_source,
    read_file,
)
from airflow_provider_aisearch.triggers import AISearchItemsTrigger, error_from_event, validate_items_event
from airflow_provider_aisearch.waiting.item_outcomes import SETTLED, UPLOAD_SOURCE, outcome_dict, wait_items_settled
from airflow_provider_aisearch.waiting.item_stats import items_deadline
from airflow_provider_aisearch.waiting.quality import ItemGate
from airflow_provider_aisearch.waiting.watch import validate_interval

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["DEFER_STATE_XCOM_KEY", "AISearchSyncItemsOperator"]

#: The XCom holding the sync's state while it waits deferred (for a resume that drops the defer kwargs).
DEFER_STATE_XCOM_KEY = "aisearch_sync_state"


class AISearchSyncItemsOperator(BaseOperator):
    """
    Sync a folder into an AI Search instance through the Items API, and return what became of each file.

    Unchanged files are not sent again: the sync stores the SHA-256 of each uploaded file in the
    item's metadata (``airflow_sha256``; Cloudflare's ``checksum`` algorithm is undocumented) and
    compares with it. A retried try uploads nothing its first try stored and waits for what is still
    in flight. Returns ``{"uploaded": [keys], "unchanged": [keys], "deleted": [keys], "failed":
    [{"key", "error"}], "skipped": [keys], "items": {the instance's counts}}`` (lists, for
    ``.expand()``). A key can be in ``uploaded`` or ``unchanged`` and also in ``failed`` or ``skipped``.

    :param instance_id: AI Search instance id (templated).
    :param source: A local folder, or an ``ObjectStoragePath`` or its URI (``file://``, ``s3://conn@bucket/dir``;
        templated).
    :param namespace: Namespace (templated); default: the connection's.
    :param aisearch_conn_id: The Airflow connection id.
    :param pattern: Glob over paths relative to ``source`` (templated): ``**/*`` (default) every file,
        ``*.md`` those at the top, ``**/*.md`` at any depth.
    :param key_prefix: Prepended to each relative path to make the item key (templated).
    :param metadata: A dict, or a callable from the file's path to a dict (string keys; string,
        number or boolean values), stored with each uploaded item.
    :param delete_removed: Delete the items under ``key_prefix`` whose key matches ``pattern`` and
        that have no file any more.
    :param wait_for_completion: Wait until every uploaded item is ``completed``, ``error`` or ``skipped``.
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: Seconds between item list rounds while waiting (> 0).
    :param timeout: Seconds the wait may last (``None``: one hour); then the task fails.
    :param max_item_errors: Fail when more of this sync's files failed than this: an ``int`` count,
        or a ``float`` in (0, 1), a share of the files settled (completed + error + skipped).
    :param max_upload_concurrency: Uploads in flight at once (>= 1).
    :param hook_params: ``timeout``, ``max_retries`` and ``retry_backoff`` for the hook.
    """

    template_fields: Sequence[str] = ("instance_id", "namespace", "source", "pattern", "key_prefix")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        instance_id: str,
        source: Any,
        namespace: str | _Unset | None = UNSET,
        aisearch_conn_id: str = AISearchHook.default_conn_name,
        pattern: str = DEFAULT_PATTERN,
        key_prefix: str = "",
        metadata: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None = None,
        delete_removed: bool = False,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30,
        timeout: float | None = None,
        max_item_errors: int | float | None = None,
        max_upload_concurrency: int = 4,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if "{{" not in str(pattern):
            compile_pattern(pattern)  # a bad glob fails at parse time (templated ones when rendered)
        if "{{" not in str(key_prefix):
            validate_key_prefix(key_prefix)
        if metadata is not None and not callable(metadata):
            validate_metadata(metadata)
            if HASH_METADATA_KEY in metadata:
                raise ValueError(f"metadata must not set {HASH_METADATA_KEY!r}: the sync stores the file's hash there")
        for name, flag in (("delete_removed", delete_removed), ("wait_for_completion", wait_for_completion)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if (
            isinstance(max_upload_concurrency, bool)
            or not isinstance(max_upload_concurrency, int)
            or max_upload_concurrency < 1
        ):
            raise ValueError(f"max_upload_concurrency must be an integer >= 1, got {max_upload_concurrency!r}")
        self.instance_id = instance_id
        self.source = source
        self.namespace = namespace
        self.aisearch_conn_id = aisearch_conn_id
        self.pattern = pattern
        self.key_prefix = key_prefix
        self.metadata = metadata
        self.delete_removed = delete_removed
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = validate_interval("poll_interval", poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        self.item_gate = ItemGate.build(max_item_errors=max_item_errors)
        self.max_upload_concurrency = max_upload_concurrency
        self.hook_params = validate_hook_params(hook_params)

    @cached_property
    def hook(self) -> AISearchHook:
        """The hook (one session for the whole try, shared by the upload threads)."""
        return AISearchHook(self.aisearch_conn_id, **self.hook_params)

    # -- execute ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Check, plan, upload and delete; then wait (here, or deferred) and report."""
        matches = compile_pattern(self.pattern)
        key_prefix = validate_key_prefix(self.key_prefix)
        validate_instance_id(self.instance_id)
        for secret in url_secrets(str(self.source)):  # a URI's credentials never reach the task log
            mask_secret(secret)
        folder = open_source(self.source)
        files = {f.key: f for f in list_files(folder, matches, key_prefix)}
        hook = self.hook
        listed = hook.iter_items(self.instance_id, source=UPLOAD_SOURCE, namespace=self.namespace)
        stored = {item.key: item for item in listed}  # uploads only: keys are unique per source
        digests: dict[str, str | None] = {}
        checksums: dict[str, frozenset[str]] = {}
        failed: list[dict[str, str]] = []
        for key, file in files.items():
            try:
                content = read_file(file)
                digests[key], checksums[key] = content_hash(content), content_digests(content)
            except UnreadableFileError as exc:
                digests[key] = None
                failed.append({"key": key, "error": str(exc)})
                self.log.error("File %r: %s", file.relative, exc)
        plan = plan_sync(
            digests,
            stored.values(),
            key_prefix=key_prefix,
            matches=matches,
            delete_removed=self.delete_removed,
            checksums=checksums,
        )
        if plan.unhashed:
            self.log.warning(
                "%d stored item(s) have no %r in their metadata (e.g. %r) and are sent again: Cloudflare keeps "
                "only the custom metadata fields the instance's custom_metadata schema declares; declare %r "
                "(text) there, or every sync re-sends these files",
                len(plan.unhashed),
                HASH_METADATA_KEY,
                plan.unhashed[0],
                HASH_METADATA_KEY,
            )
        self.log.info(
            "Sync of %s into instance %r: %d file(s) match %r; %d to upload, %d unchanged, %d to delete, %d unreadable",
            redact_url(str(self.source)),
            self.instance_id,
            len(files),
            self.pattern,
            len(plan.upload),
            len(plan.unchanged),
            len(plan.delete),
            len(failed),
        )
        known = {key: stored[key] for key in plan.unchanged}
        uploaded = self._upload([files[key] for key in plan.upload], known, failed)
        deleted = self._delete(plan.delete, failed)
        partial = {"uploaded": uploaded, "unchanged": plan.unchanged, "deleted": deleted, "failed": failed}
        synced = uploaded + plan.unchanged
        pending = [key for key in synced if known[key].status not in SETTLED] if self.wait_for_completion else []
        if not pending:
            return self._report(partial, known, [])
        deadline = items_deadline(None if self.timeout is None else time.time() + self.timeout)
        if self.deferrable:
            # Only the settled items that did not complete travel with the deferral (the others completed).
            others = {key: outcome_dict(known[key]) for key in synced if key not in pending}
            settled = {key: value for key, value in others.items() if value["status"] != "completed"}
            # Also in an XCom: `airflow dags test` (dag.test) resumes with the event alone, dropping the kwargs.
            ti = context.get("ti")
            if ti is not None:
                ti.xcom_push(key=DEFER_STATE_XCOM_KEY, value={"partial": partial, "known": settled})
            self.defer(
                trigger=AISearchItemsTrigger(
                    instance_id=self.instance_id,
                    keys=pending,
                    aisearch_conn_id=self.aisearch_conn_id,
                    namespace=hook.api.resolve_namespace(self.namespace),
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                    timeout=hook.timeout,
                    max_retries=hook.retry_policy.max_retries,
                    retry_backoff=hook.retry_policy.backoff,
                ),
                method_name="execute_complete",
                kwargs={"partial": partial, "known": settled},
            )
        latest = hook.run(
            wait_items_settled(
                hook.api.with_deadline(deadline),
                self.instance_id,
                pending,
                namespace=self.namespace,
                interval=self.poll_interval,
                deadline=deadline,
                log=self.log,
            )
        )
        known.update(latest)
        return self._report(partial, known, [key for key in pending if known[key].status not in SETTLED])

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        partial: dict[str, Any] | None = None,
        known: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger: report, as the worker's wait does."""
        event = validate_items_event(event)
        if event["status"] == "error":
            raise error_from_event(event)
        ti = context.get("ti")
        if partial is None and ti is not None:  # resumed by dag.test(), which passes the event only: from the XCom
            stash = ti.xcom_pull(task_ids=ti.task_id, key=DEFER_STATE_XCOM_KEY, map_indexes=ti.map_index)
            if isinstance(stash, Mapping) and isinstance(stash.get("partial"), Mapping):
                partial, known = dict(stash["partial"]), stash.get("known")
        if partial is None:
            raise AISearchError("AISearchSyncItemsOperator resumed without the sync's state (kwargs 'partial')")
        items = {key: Item.from_api(raw) for key, raw in {**(known or {}), **event["items"]}.items()}
        for key in [*partial["uploaded"], *partial["unchanged"]]:
            if key not in items and key not in event.get("pending", []):
                items[key] = Item(id="-", key=key, status="completed")  # settled before deferring: completed
        return self._report(partial, items, list(event.get("pending", [])))

    # -- upload and delete -------------------------------------------------------------------------

    def _metadata_for(self, file: SourceFile, digest: str) -> dict[str, Any]:
        user = self.metadata(file.path) if callable(self.metadata) else self.metadata
        validate_metadata(user)
        if user is not None and HASH_METADATA_KEY in user:
            raise ValueError(f"metadata for {file.relative!r} must not set {HASH_METADATA_KEY!r}")
        return {**(user or {}), HASH_METADATA_KEY: digest}

    def _upload_one(self, file: SourceFile, stop: threading.Event) -> Item | None:
        """Upload one file (``None``: not started, the sync is stopping); a fatal error stops the rest."""
        if stop.is_set():
            return None
        try:
            content = read_file(file)  # read again: only the hashes were kept
            metadata = self._metadata_for(file, content_hash(content))
            return self.hook.upload_item(
                self.instance_id, file.key, content, metadata=metadata, namespace=self.namespace
            )
        except BaseException as exc:
            if not _per_file(exc):
                stop.set()  # no upload starts after it: a retried try finds a clean cut
            raise

    def _upload(self, files: list[SourceFile], known: dict[str, Item], failed: list[dict[str, str]]) -> list[str]:
        """Upload ``files`` (a failure of one file is reported for it; auth, a missing instance or a bug raise)."""
        if not files:
            return []
        hook = self.hook
        _ = hook.session, hook.api  # built once, here, before the threads share them
        uploaded: list[str] = []
        stop = threading.Event()
        fatal: BaseException | None = None
        with ThreadPoolExecutor(self.max_upload_concurrency, thread_name_prefix="aisearch-upload") as pool:
            futures = [(pool.submit(self._upload_one, file, stop), file) for file in files]
            for future, file in futures:
                exc = future.exception()
                if exc is None:
                    item = future.result()
                    if item is not None:
                        known[file.key] = item
                        uploaded.append(file.key)
                elif _per_file(exc):
                    failed.append({"key": file.key, "error": str(exc)})
                    self.log.error("Upload of %r failed: %s", file.key, exc)
                elif fatal is None:
                    fatal = exc
        if fatal is not None:
            self.log.error("Stopped the sync after %d upload(s): %s", len(uploaded), fatal)
            raise fatal
        self.log.info("Uploaded %d file(s)", len(uploaded))
        return uploaded

    def _delete(self, targets: list[tuple[str, str]], failed: list[dict[str, str]]) -> list[str]:
        deleted = []
        for key, item_id in targets:
            try:
                self.hook.delete_item(self.instance_id, item_id, namespace=self.namespace)
            except AISearchNotFoundError:
                self.log.info("Item %r was already deleted (by an earlier try?)", key)
            except AISearchAuthError:
                raise
            except AISearchError as exc:
                failed.append({"key": key, "error": f"delete failed: {exc}"})
                self.log.error("Delete of %r failed: %s", key, exc)
                continue
            deleted.append(key)
        if targets:
            self.log.info("Deleted %d item(s) whose file is gone", len(deleted))
        return deleted

    # -- report -------------------------------------------------------------------------------------

    def _report(self, partial: Mapping[str, Any], known: Mapping[str, Item], pending: list[str]) -> dict[str, Any]:
        outcomes = file_outcomes(partial, known)
        log_item_errors(self.hook, self.instance_id, self.namespace, outcomes.errored, self.log)
        if pending:
            raise AISearchSyncTimeoutError(
                f"{len(pending)} item(s) of instance {self.instance_id!r} were not completed, in error or skipped "
                f"when the timeout passed (e.g. {', '.join(pending[:5])})"
            )
        stats = self.hook.get_instance_stats(self.instance_id, namespace=self.namespace)
        result = {
            "uploaded": list(partial["uploaded"]),
            "unchanged": list(partial["unchanged"]),
            "deleted": list(partial["deleted"]),
            "failed": outcomes.failed,
            "skipped": outcomes.skipped,
            "items": stats.to_dict(),
        }
        self.log.info(
            "Synced: %d uploaded, %d unchanged, %d deleted, %d failed, %d skipped",
            *(len(result[name]) for name in ("uploaded", "unchanged", "deleted", "failed", "skipped")),
        )
        ours = outcomes.counts()
        reason = self.item_gate.exceeded(ours)
        if reason is not None:
            raise AISearchIndexQualityError(
                f"Sync into instance {self.instance_id!r}: {reason} among this sync's files "
                f"({self.item_gate.describe()}): {', '.join(f['key'] for f in outcomes.failed[:5])}",
                stats=ours,
                max_item_errors=self.item_gate.max_item_errors,
            )
        return result


def _per_file(exc: BaseException) -> bool:
    """Whether an upload's failure is its file's alone (reported in ``failed``); auth, a missing instance or a bug
    stop the sync.
    """
    if isinstance(exc, UnreadableFileError):
        return True
    return isinstance(exc, AISearchError) and not isinstance(exc, (AISearchAuthError, AISearchNotFoundError))
