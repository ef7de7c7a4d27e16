"""Operator extra links."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

__all__ = ["DASHBOARD_URL_XCOM_KEY", "AISearchJobsLink", "dashboard_url"]

#: XCom key under which operators store the dashboard URL (links never call the API).
DASHBOARD_URL_XCOM_KEY = "aisearch_dashboard_url"


def dashboard_url(account_id: str, instance_id: str) -> str:
    """
    The Cloudflare dashboard page of an AI Search instance's jobs.

    ``https://dash.cloudflare.com/{account}/ai/ai-search`` is Cloudflare's documented entry point
    (``?to=/:account/ai/ai-search``); the ``/instance/{id}/jobs`` suffix follows the dashboard's layout.
    """
    return (
        f"https://dash.cloudflare.com/{quote(account_id, safe='')}/ai/ai-search/instance/"
        f"{quote(instance_id, safe='')}/jobs"
    )


class AISearchJobsLink(BaseOperatorLink):
    """Extra link "Cloudflare AI Search": the instance's jobs in the Cloudflare dashboard."""

    name = "Cloudflare AI Search"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """Read the URL the task stored in XCom (empty before the task ran)."""
        value = XCom.get_value(key=DASHBOARD_URL_XCOM_KEY, ti_key=ti_key)
        return value if isinstance(value, str) else ""
