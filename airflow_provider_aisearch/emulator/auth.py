"""Credentials: which scheme a request uses, Cloudflare's answers when it is wrong, token verify and ``/user``.

Schemes: an API token (``Authorization: Bearer``) or an email with the Global API Key
(``X-Auth-Email`` / ``X-Auth-Key``); both at once is a 400, neither a 401. A token is account- or
user-owned (which ``tokens/verify`` endpoint accepts it); a forbidden token verifies but gets 403
on the jobs routes. A revoked token (``token_revoked``, e.g. through the control channel) gets
Cloudflare's 401 everywhere until it is restored. Header values are checked here and never stored.
"""

from __future__ import annotations

from collections.abc import Set
from email.message import Message

from airflow_provider_aisearch.emulator.envelopes import AUTH_ERROR, INVALID_TOKEN, NO_ROUTE, Reply, error, ok

__all__ = ["Credentials", "auth_kind"]


def auth_kind(headers: Message[str, str]) -> str:
    """The scheme a request's headers use: ``"bearer"``, ``"global_key"``, ``"both"`` or ``"none"``."""
    bearer = headers.get("Authorization") is not None
    key = headers.get("X-Auth-Key") is not None or headers.get("X-Auth-Email") is not None
    return "both" if bearer and key else "bearer" if bearer else "global_key" if key else "none"


class Credentials:
    """
    The credentials :class:`~airflow_provider_aisearch.emulator.AISearchEmulator` accepts.

    The emulator's constructor sets the attributes below (``token_status`` is what token verify reports;
    ``token_revoked``: the API token answers 401, as a revoked or rolled token does, until set back).
    """

    account_id: str
    token: str
    token_owner: str
    token_status: str
    token_revoked: bool
    forbidden_tokens: Set[str]
    email: str | None
    global_key: str | None

    def _authenticate(
        self, headers: Message[str, str], scheme: str, route: str, segments: tuple[str, ...]
    ) -> Reply | None:
        """
        The answer for a request whose credentials fail, or for the credential routes themselves
        (``user``, ``account_verify``, ``user_verify``); ``None``: serve the jobs route.
        """
        if scheme == "both":
            return error(
                400,
                {
                    "code": 6003,
                    "message": "Invalid request headers",
                    "error_chain": [
                        {"code": 6111, "message": "Send either an API token or an email and Global API Key, not both"}
                    ],
                },
            )
        if scheme == "none":
            return error(401, AUTH_ERROR)
        token = None
        if scheme == "bearer":
            value = headers.get("Authorization", "")
            if not value.startswith("Bearer ") or not value[7:]:
                return error(
                    400,
                    {
                        "code": 6003,
                        "message": "Invalid request headers",
                        "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
                    },
                )
            token = value[7:]
            if (token != self.token or self.token_revoked) and token not in self.forbidden_tokens:
                return error(401, INVALID_TOKEN if route.endswith("verify") else AUTH_ERROR)
        else:
            if not (
                self.email
                and headers.get("X-Auth-Email") == self.email
                and headers.get("X-Auth-Key") == self.global_key
            ):
                return error(403, {"code": 9103, "message": "Unknown X-Auth-Key or X-Auth-Email"})

        if route == "user":
            if scheme != "global_key" and self.token_owner != "user":
                return error(403, AUTH_ERROR)
            return ok({"id": "emulated-user", "email": self.email or "user@example.com"})
        if route in ("account_verify", "user_verify"):
            if scheme != "bearer":
                return error(400, {"code": 6003, "message": "Invalid request headers"})
            owner = "account" if route == "account_verify" else "user"
            if owner != self.token_owner:
                return error(401, INVALID_TOKEN)
            if owner == "account" and segments[0] != self.account_id:
                return error(404, NO_ROUTE)
            return ok(
                {"id": "emulated-token-id", "status": self.token_status},
                messages=[{"code": 10000, "message": "This API Token is valid and active", "type": None}],
            )

        if token is not None and token in self.forbidden_tokens:
            return error(403, AUTH_ERROR)
        return None
