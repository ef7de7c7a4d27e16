"""How a retried or cleared task instance recognises the job an earlier try of it started.

Two marks: the default job description, ``airflow:<dag>:<task>[<map index>]:<run id>:try<n>``
(every try of one task instance shares everything before ``:try<n>``), and on Airflow 3.3+ the
job id kept in the task state store under :data:`STATE_STORE_KEY` (which covers a user-set
description too). The store is an aid: reading or writing it never fails the task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api import DESCRIPTION_MAX_LENGTH
from airflow_provider_aisearch.exceptions import AISearchNotFoundError
from airflow_provider_aisearch.models.jobs import Job
from airflow_provider_aisearch.waiting.job_filter import newest_first_key

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "STATE_STORE_KEY",
    "default_description",
    "earlier_try_job",
    "earlier_try_number",
    "store_job_id",
    "stored_job_id",
    "task_instance_prefix",
]

#: Key under which the create operator keeps its job id in the task state store (Airflow 3.3+).
STATE_STORE_KEY = "aisearch_job_id"
#: Room left in a default description for ``:try<n>`` (try numbers up to 999,999).
_TRY_SUFFIX_ROOM = len(":try") + 6


def task_instance_prefix(context: Context) -> str:
    """``airflow:<dag>:<task>[<map index>]:<run id>``, shortened (ending in its hash) to leave room for ``:try<n>``."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    mapped = f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else ""
    text = f"airflow:{ti.dag_id}:{ti.task_id}{mapped}:{ti.run_id}"
    room = DESCRIPTION_MAX_LENGTH - _TRY_SUFFIX_ROOM
    if len(text) <= room:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text[: room - 17] + "~" + digest


def default_description(context: Context) -> str:
    """
    ``airflow:<dag>:<task>[<map index>]:<run id>:try<n>``, at most 255 characters.

    A long task-instance part is shortened to end in its hash, and every try of one task instance
    shares everything before ``:try<n>``: that is how a retry recognises the job an earlier try started.
    """
    return f"{task_instance_prefix(context)}:try{context['ti'].try_number}"


def earlier_try_number(description: str | None, prefix: str, try_number: int) -> int | None:
    """The try that wrote ``description`` (a default one with ``prefix``), if it is earlier than ``try_number``."""
    if description is None or not description.startswith(prefix + ":try"):
        return None
    number = description[len(prefix) + len(":try") :]
    if not number.isdigit() or int(number) >= try_number:
        return None
    return int(number)


def earlier_try_job(
    context: Context, jobs: Sequence[Job], *, description: str | None, get_job: Callable[[str], Job], log: Any
) -> Job | None:
    """
    A running job an earlier try of this task instance started (task state store, or default description).

    :param context: The task's context.
    :param jobs: The instance's newest jobs.
    :param description: The operator's own ``description`` (``None``: the default one, which identifies the try).
    :param get_job: Looks a job up by id (for a stored id not among ``jobs``).
    :param log: The operator's logger.
    """
    stored = stored_job_id(context, log)
    running = sorted((j for j in jobs if j.is_running), key=newest_first_key, reverse=True)
    for job in running:
        if stored is not None and job.id == stored:
            return job
    if description is None:
        prefix = task_instance_prefix(context)
        try_number = context["ti"].try_number
        for job in running:
            if earlier_try_number(job.description, prefix, try_number) is not None:
                return job
    if stored is not None and stored not in {j.id for j in jobs}:
        try:  # not among the newest jobs listed: look it up
            job = get_job(stored)
        except AISearchNotFoundError:
            return None
        return job if job.is_running else None
    return None


def stored_job_id(context: Context, log: Any) -> str | None:
    """The job id an earlier try kept in the task state store, if any (Airflow 3.3+)."""
    store = context.get("task_state_store")
    if store is None:
        return None
    try:
        value = store.get(STATE_STORE_KEY)
    except Exception as exc:  # the store is an aid, never a reason to fail
        log.warning("Could not read the task state store: %s", exc)
        return None
    return value if isinstance(value, str) and value else None


def store_job_id(context: Context, job_id: str, log: Any) -> None:
    """Keep ``job_id`` in the task state store for later tries (Airflow 3.3+; no-op elsewhere)."""
    store = context.get("task_state_store")
    if store is None:
        return
    try:
        store.set(STATE_STORE_KEY, job_id)
    except Exception as exc:
        log.warning("Could not keep job id %s in the task state store: %s", job_id, exc)
