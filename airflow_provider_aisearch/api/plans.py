"""Plans: each API operation as a generator that yields what to do and receives the results.

A plan yields :class:`Call` (the driver sends it and answers with an :class:`Answer`) or
:class:`Backoff` (the driver sleeps). The sync hook drives plans with :func:`run_sync`, the async
client with :func:`run_async`, so the retry loop, paths and parsing exist once, free of any transport.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_aisearch.api.errors import TransportFailure

__all__ = ["Answer", "Backoff", "Call", "Plan", "run_async", "run_sync"]


@dataclass(frozen=True)
class Call:
    """
    One HTTP request a plan wants sent; the driver answers with an :class:`Answer`.

    :param method: HTTP method.
    :param path: Path relative to the base URL (already validated and encoded).
    :param params: Query parameters.
    :param json_body: JSON body, if any.
    :param create: A job create, which must never be re-sent after an ambiguous failure.
    :param description: The create's description (carried by the ambiguity error).
    :param retry_cooldown: Retry a create's ``sync_in_cooldown`` answer here (``False``: raise it at
        once, for a caller that looks at the instance again before each retry).
    :param files: A multipart body's file parts, ``(field, (filename, content, content_type))`` each
        (with ``data``, sent as ``multipart/form-data``; never with ``json_body``).
    :param data: A multipart body's plain form fields, in order.
    :param raw: The answer is the content itself (a download), not a JSON envelope: a 2xx answer's
        payload is ``{"result": body_bytes, "content_type": ...}``.
    :param accept: The ``Accept`` header when the answer is not JSON (a download: ``application/octet-stream``,
        as the SDK sends it); ``None``: the client's ``application/json``.
    :param resource: What a ``create`` call creates (``"job"``, ``"item"``), named in the ambiguity error.
    :param gone_after_retry: A delete: a 404 answering a retry after an attempt whose answer was lost
        (or a 5xx) means that attempt deleted it, so the plan gets ``{"result": None, "gone": True}``.
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    create: bool = False
    description: str | None = None
    retry_cooldown: bool = True
    files: tuple[tuple[str, tuple[str, bytes, str]], ...] | None = field(default=None, repr=False)
    data: Mapping[str, str] | None = None
    raw: bool = False
    accept: str | None = None
    resource: str = "job"
    gone_after_retry: bool = False

    def __post_init__(self) -> None:
        if self.files is not None and self.json_body is not None:
            raise ValueError("a call carries a JSON body or a multipart one (files/data), not both")


@dataclass(frozen=True)
class Answer:
    """What came back for a :class:`Call`: an HTTP answer, or a transport failure (``status=None``)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    failure: TransportFailure | None = None
    failure_detail: str = ""


@dataclass(frozen=True)
class Backoff:
    """
    A wait a plan asks for before retrying; the driver logs ``message`` at ``level``, sleeps
    ``seconds`` and sends ``None``.
    """

    seconds: float
    message: str
    level: int = logging.WARNING


T = TypeVar("T")
#: A plan: yields :class:`Call` (send back an :class:`Answer`) or :class:`Backoff` (send back ``None``).
Plan = Generator[Call | Backoff, Answer | None, T]


def run_sync(plan: Plan[T], send: Callable[[Call], Answer], sleep: Callable[[Backoff], None]) -> T:
    """Drive ``plan`` with blocking ``send`` / ``sleep`` callables and return its result."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Call):
                step = plan.send(send(step))
            else:
                sleep(step)
                step = plan.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        plan.close()  # abandoned mid-request (interrupted): the plan releases its rate-limit slot now


async def run_async(
    plan: Plan[T], send: Callable[[Call], Awaitable[Answer]], sleep: Callable[[Backoff], Awaitable[None]]
) -> T:
    """Drive ``plan`` with awaitable ``send`` / ``sleep`` callables and return its result."""
    try:
        step = next(plan)
        while True:
            if isinstance(step, Call):
                step = plan.send(await send(step))
            else:
                await sleep(step)
                step = plan.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        plan.close()  # abandoned mid-request (cancelled): the plan releases its rate-limit slot now
