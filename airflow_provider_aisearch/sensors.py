"""AISearchJobSensor: wait until an AI Search indexing job ends; fail on a failing end reason."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_aisearch.api import UNSET, _Unset
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.lineage.job_lineage import AISearchLineageMixin
from airflow_provider_aisearch.models.jobs import Job
from airflow_provider_aisearch.tasks.job_wait import AISearchJobWaitMixin, end_reason_settings, validate_hook_params
from airflow_provider_aisearch.waiting.quality import OUTCOME_ERRORS
from airflow_provider_aisearch.waiting.watch import JobWatch, validate_interval

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["AISearchJobSensor", "AISearchJobWaitMixin", "end_reason_settings", "validate_hook_params"]


class AISearchJobSensor(AISearchLineageMixin, AISearchJobWaitMixin, BaseSensorOperator):
    """
    Wait until a Cloudflare AI Search indexing job ends.

    Each poke is one GET of the job. When it has ended successfully the sensor is done and pushes
    the job's dict (plus ``"followed_from"``) as its XCom ``return_value``. A failing end reason
    (``failed`` or ``cancelled`` after the overrides) raises
    :class:`~airflow_provider_aisearch.exceptions.AISearchJobFailedError` after writing the last
    ``log_tail`` log lines to the task log. It is an ``AirflowException``, so the task's
    ``retries`` apply; with ``soft_fail=True`` it becomes a skip (in poke, reschedule and
    deferrable mode alike).

    Transient API errors (those the hook's retry policy retries: 5xx, 429, timeouts, resets,
    malformed answers) are logged and the next poke tries again; any other API error (auth, not
    found, 400, 3xx, 405/409/422, a fatal transport failure) fails at once, also with
    ``soft_fail=True``. ``never_fail=True`` turns every failure into a skip, in every mode. With
    ``deferrable=True`` the sensor checks once and then waits in the triggerer
    (:class:`~airflow_provider_aisearch.triggers.AISearchJobTrigger`), with the same logic and the
    sensor's ``timeout`` as an absolute deadline.

    :param instance_id: AI Search instance id (templated).
    :param job_id: Job to wait on (templated).
    :param namespace: Namespace (templated); default: the connection's. ``None`` = legacy paths.
    :param aisearch_conn_id: The Airflow connection id.
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poke_interval: Seconds between polls (> 0; a number or a ``timedelta``).
    :param on_superseded: When the job ends with ``new_job_has_started``: ``"follow"`` the job that
        replaced it (default), ``"fail"``, or ``"succeed"``.
    :param success_end_reasons: Extra end reasons meaning success (case-insensitive).
    :param failure_end_reasons: Extra end reasons meaning failure (case-insensitive).
    :param log_tail: How many of the job's last log lines to write to the task log on failure.
    :param hook_params: ``timeout``, ``max_retries`` and ``retry_backoff`` for
        :class:`~airflow_provider_aisearch.hooks.AISearchHook` (also used by the trigger).
    :param max_item_errors: Item quality gate (:mod:`~airflow_provider_aisearch.waiting.quality`): after a successful
        end, fail when more items are ``error`` than this count (int) or share of the processed items (float).
    :param allow_degraded_stats: Let ``degraded`` stats (no counts) pass the gate (always with a warning).
    :param wait_for_items: After the job ends, wait until no item is ``queued`` or ``running``.
    :param read_item_stats: Read the stats into the XCom (``"items"``); default: only for a gate or a wait.
    """

    template_fields: Sequence[str] = ("instance_id", "job_id", "namespace")
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        instance_id: str,
        job_id: str,
        namespace: str | _Unset | None = UNSET,
        aisearch_conn_id: str = AISearchHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60,
        on_superseded: str = "follow",
        success_end_reasons: Iterable[str] | None = None,
        failure_end_reasons: Iterable[str] | None = None,
        log_tail: int = 20,
        hook_params: dict[str, Any] | None = None,
        max_item_errors: int | float | None = None,
        allow_degraded_stats: bool = False,
        wait_for_items: bool = False,
        read_item_stats: bool | None = None,
        **kwargs: Any,
    ) -> None:
        validate_interval("poke_interval", poke_interval)  # before Airflow's check, which allows 0
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.instance_id = instance_id
        self.job_id = job_id
        self.namespace = namespace
        self.aisearch_conn_id = aisearch_conn_id
        self.deferrable = deferrable
        self._init_wait(
            on_superseded=on_superseded,
            success_end_reasons=success_end_reasons,
            failure_end_reasons=failure_end_reasons,
            log_tail=log_tail,
            hook_params=hook_params,
            max_item_errors=max_item_errors,
            allow_degraded_stats=allow_degraded_stats,
            wait_for_items=wait_for_items,
            read_item_stats=read_item_stats,
        )
        self._ended: tuple[Job, dict[str, Any]] | None = None  # the job's outcome, once known (poke mode)

    @cached_property
    def watch(self) -> JobWatch:
        """The wait state (built after templates are rendered)."""
        return self._new_watch(self.job_id)

    # -- poke path ---------------------------------------------------------------------------

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One GET of the job (then of the item stats, if asked): not done while it runs; done with its dict."""
        if not hasattr(self, "_warned"):
            self._warned = True
            self._warn_fast_polling(self.poke_interval)
        try:
            if self._ended is None:
                result = self._poll(self.watch)
                if result is None or not result.done:
                    return False
                self._ended = (result.job, self._finish(result.job, result.followed_from))
            value = self.item_check.poke(*self._ended)
            if value is None:
                return False
        except OUTCOME_ERRORS as exc:
            # Airflow's poke loop only skips AirflowFailException and timeouts for soft_fail.
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise
        return PokeReturnValue(is_done=True, xcom_value=value)

    # -- deferrable path ---------------------------------------------------------------------

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """
        As Airflow's, made to match the poke path in every Airflow version.

        ``soft_fail``: a failed job and a timeout become a skip, but an API error (the trigger only
        reports permanent ones: auth, not found, 400...) fails, as it does when poking.
        ``never_fail``: every failure becomes a skip (Airflow 2's ``resume_execution`` ignores it).
        """
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as exc:
            cause = exc.__cause__
            if self.soft_fail and isinstance(cause, AISearchError) and not isinstance(cause, OUTCOME_ERRORS):
                raise cause from None
            raise
        except Exception as exc:
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from exc
            raise

    def execute(self, context: Context) -> Any:
        """Poke (classic), or check once and defer to :class:`AISearchJobTrigger`."""
        if not self.deferrable:
            return super().execute(context)
        self._warned = True
        self._warn_fast_polling(self.poke_interval)
        try:
            result = self._poll(self.watch)
            if result is not None and result.done:  # (items still in flight or unread: the trigger waits)
                value = self.item_check.poke(result.job, self._finish(result.job, result.followed_from))
                if value is not None:
                    return value
        except AirflowSkipException:
            raise
        except OUTCOME_ERRORS as exc:  # as the poke path: a failed job (or gate) is skipped with soft_fail
            if self.soft_fail or self.never_fail:
                flag = "soft_fail" if self.soft_fail else "never_fail"
                raise AirflowSkipException(f"Skipping due to {flag}: {exc}") from exc
            raise
        except Exception as exc:  # as the poke path: never_fail skips any failure; soft_fail does not
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from exc
            raise
        self.defer(
            trigger=self._trigger(self.watch, self.poke_interval, self.timeout),
            method_name="execute_complete",
            # A backstop only: the trigger reports the timeout itself after one last poll.
            timeout=timedelta(seconds=self.timeout + self.poke_interval + 60),
        )
