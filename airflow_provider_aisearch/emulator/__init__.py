"""A local emulator of the Cloudflare AI Search jobs API (stdlib only).

Use it to try the example DAGs without a Cloudflare account, and in tests::

    with AISearchEmulator(instances=["docs"]) as emu:
        emu.url                      # http://127.0.0.1:<port>/client/v4
        emu.connection_json()        # value for AIRFLOW_CONN_AISEARCH_DEFAULT
        emu.requests                 # what clients sent (never header values)

or from a shell: ``python -m airflow_provider_aisearch.emulator --port 8787``.

It serves every jobs endpoint in the namespaced and the legacy un-namespaced form, the instance
and its stats (both forms) and its items list (namespaced only; items a job moves through
``queued -> running -> completed/error/skipped``, see :mod:`.items`), the search (namespaced only;
BM25 over the completed documents an instance holds, see :mod:`.documents` and :mod:`.search_endpoints`),
token verify and ``/user``,
with Cloudflare's envelopes, auth checks (401/403), pagination with ``result_info``, jobs that
end as time passes, ``new_job_has_started`` when a job is created while one runs, the create
cooldown (429, code 7020), and scripted faults (:meth:`AISearchEmulator.inject`).
Cancelling an ended job gets Cloudflare's 400 ``Job cannot be cancelled.``; its own validation
errors (400) carry a ``path`` array like Cloudflare's. Error codes it invents where Cloudflare
documents none: ``job_not_found`` is 7005, ``Job cannot be cancelled.`` is 7009.

Modules: :mod:`.server` (:class:`AISearchEmulator`: HTTP, the request log), :mod:`.routes` (the
paths served), :mod:`.auth` (credentials, token verify), :mod:`.endpoints` (the jobs endpoints),
:mod:`.instance_endpoints` (instance, stats, items), :mod:`.items` (the items' lifecycle and settings),
:mod:`.documents` (documents and their store), :mod:`.search_endpoints` (the search), :mod:`.search_index`
(chunking, BM25), :mod:`.search_filters` (metadata filters),
:mod:`.state` (instances, jobs and their lifecycles), :mod:`.envelopes` (Cloudflare's answer
envelopes and error entries), :mod:`.faults` (:class:`Fault`, :class:`Chaos`), :mod:`.ratelimit`
(:class:`RateLimit`), :mod:`.control` (the ``/_emulator/`` control channel, off by default) and
:mod:`.__main__` (the command line). It imports nothing from the rest of
the provider.
"""

from __future__ import annotations

from airflow_provider_aisearch.emulator.faults import CHAOS_KINDS, Chaos, Fault
from airflow_provider_aisearch.emulator.ratelimit import RateLimit
from airflow_provider_aisearch.emulator.server import AISearchEmulator, RequestRecord
from airflow_provider_aisearch.emulator.state import EmulatedJob

__all__ = ["CHAOS_KINDS", "AISearchEmulator", "Chaos", "EmulatedJob", "Fault", "RateLimit", "RequestRecord"]
