"""The connection's Test button: are the credentials good? One or two cheap GETs, no retries, short waits.

Token: ``/accounts/{account_id}/tokens/verify``, falling back to ``/user/tokens/verify`` for
user-owned tokens. Email + Global API Key: ``/user``. Each request waits at most the hook's
``TEST_TIMEOUT`` (the UI's Test button waits on it), whatever the hook's ``timeout``. Every
outcome is a ``(bool, message)`` pair; nothing is raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_aisearch.api import Call, ConnectionInfo, describe_errors, path_segment, result_of
from airflow_provider_aisearch.exceptions import AISearchAuthError, AISearchError, AISearchNotFoundError

if TYPE_CHECKING:
    from airflow_provider_aisearch.hooks import AISearchHook

__all__ = ["check_connection"]


def check_connection(hook: AISearchHook) -> tuple[bool, str]:
    """
    :meth:`AISearchHook.test_connection <airflow_provider_aisearch.hooks.AISearchHook.test_connection>`:
    whether the hook's credentials work, and a message saying why.
    """
    try:
        info = hook.conn_info
        account = info.require_account_id()
        info.require_secret()
        path_segment("account_id", account)
    except (AISearchError, ValueError) as exc:
        return False, str(exc)
    except Exception as exc:  # connection not found, etc.
        return False, f"Cannot read connection {hook.aisearch_conn_id!r}: {type(exc).__name__}: {exc}"
    saved = hook.timeout
    connect, read = saved if isinstance(saved, tuple) else (saved, saved)
    hook.timeout = (min(connect, hook.TEST_TIMEOUT[0]), min(read, hook.TEST_TIMEOUT[1]))
    try:
        return _check_credentials(hook, info, account)
    finally:
        hook.timeout = saved


def _check_credentials(hook: AISearchHook, info: ConnectionInfo, account: str) -> tuple[bool, str]:
    try:
        if info.email:
            payload = hook.run(hook.api.request(Call("GET", "/user"), max_retries=0))
            result = result_of(payload, dict, method="GET", path="/user")
            return True, f"Global API Key accepted for {result.get('email') or info.email}."
        attempts: list[str] = []
        for path, owner in (
            (f"/accounts/{path_segment('account_id', account)}/tokens/verify", "account"),
            ("/user/tokens/verify", "user"),
        ):
            try:
                payload = hook.run(hook.api.request(Call("GET", path), max_retries=0))
            except (AISearchAuthError, AISearchNotFoundError) as exc:
                attempts.append(describe_errors(exc.errors) or f"HTTP {exc.status_code}")
                continue
            result = result_of(payload, dict, method="GET", path=path)
            token_status = result.get("status")
            if token_status not in (None, "active"):
                return False, f"The API token is {token_status} ({owner}-owned token)."
            return True, f"API token is active ({owner}-owned token); account {account}."
        reasons = " | ".join(dict.fromkeys(attempts))  # both checks usually give the same reason
        return False, f"The API token was rejected (account-owned and user-owned token checks): {reasons}"
    except AISearchError as exc:
        return False, str(exc)
