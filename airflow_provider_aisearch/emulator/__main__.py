"""The emulator's command line: ``python -m airflow_provider_aisearch.emulator --port 8787``.

Prints the base URL and an ``AIRFLOW_CONN_AISEARCH_DEFAULT`` line for it, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import time

from airflow_provider_aisearch.emulator.documents import load_documents
from airflow_provider_aisearch.emulator.ratelimit import RateLimit
from airflow_provider_aisearch.emulator.server import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN, AISearchEmulator
from airflow_provider_aisearch.emulator.state import LOG_TIME_UNITS, TIMESTAMP_FORMATS

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground (``python -m airflow_provider_aisearch.emulator``)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_aisearch.emulator",
        description="Local Cloudflare AI Search jobs API emulator. Prints its base URL and an Airflow "
        "connection for it, then serves until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port (printed)")
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the valid API token")
    parser.add_argument("--email", default=None, help="account email for the Global API Key scheme")
    parser.add_argument("--global-key", default=None, help="the Global API Key matching --email")
    parser.add_argument(
        "--namespace",
        action="append",
        help="namespace holding every --instance (repeatable; default: default); the first one goes in the "
        "printed connection",
    )
    parser.add_argument(
        "--instance", action="append", help="instance id, or NAMESPACE/ID for one namespace (repeatable; default: docs)"
    )
    parser.add_argument("--seed-jobs", type=int, default=3, help="ended jobs to create per instance")
    parser.add_argument("--items", type=int, default=20, help="files each instance's source holds")
    parser.add_argument(
        "--documents",
        metavar="DIR",
        default=None,
        help="load every .md/.txt file under DIR into each instance (key: its path relative to DIR, with '/'): "
        "the instance's items are these documents, and its search (BM25) reads them (--items is ignored)",
    )
    parser.add_argument(
        "--item-error-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share (0-1) of each job's files that end 'error' with realistic error strings (default 0)",
    )
    parser.add_argument("--job-duration", type=float, default=10.0)
    parser.add_argument(
        "--timestamp-format",
        choices=TIMESTAMP_FORMATS,
        default="cloudflare",
        help="cloudflare: 2026-07-16 19:29:59 (as Cloudflare sends today); rfc3339: 2026-07-16T21:29:59.123456+02:00; "
        "epoch / epoch_string: a job's timestamps as Unix seconds (number / string); iso, mixed",
    )
    parser.add_argument("--log-time-unit", choices=LOG_TIME_UNITS, default="seconds", help="of a log's created_at")
    parser.add_argument("--cooldown", type=float, default=30.0)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="serve at most N requests per --rate-window seconds, then refuse all for --rate-window (429, code 971)",
    )
    parser.add_argument("--rate-window", type=float, default=300.0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--control",
        action="store_true",
        help="serve the control channel under /_emulator/ (bearer: --token): request log, jobs, rate limit",
    )
    args = parser.parse_args(argv)
    if (args.email is None) != (args.global_key is None):
        parser.error("--email and --global-key go together")
    if not 0 <= args.item_error_share <= 1:
        parser.error("--item-error-share must be from 0 to 1")
    if args.items < 0:
        parser.error("--items must be >= 0")
    try:
        documents = None if args.documents is None else load_documents(args.documents)
    except ValueError as exc:
        parser.error(f"--documents: {exc}")
    namespaces = args.namespace or ["default"]
    instances: list[tuple[str, str]] = []
    for item in args.instance or ["docs"]:
        if "/" in item:
            namespace, instance_id = item.split("/", 1)
            instances.append((namespace, instance_id))
        else:
            instances.extend((namespace, item) for namespace in namespaces)
    emu = AISearchEmulator(
        host=args.host,
        port=args.port,
        account_id=args.account_id,
        token=args.token,
        email=args.email,
        global_key=args.global_key,
        instances=(),
        job_duration=args.job_duration,
        cooldown=args.cooldown,
        timestamp_format=args.timestamp_format,
        log_time_unit=args.log_time_unit,
        verbose=args.verbose,
        control=args.control,
    )
    if args.rate_limit is not None:
        emu.rate_limit = RateLimit(limit=args.rate_limit, window=args.rate_window, lockout=args.rate_window)
    emu.set_item_errors(args.item_error_share)
    for namespace, instance_id in instances:
        emu.add_instance(instance_id, namespace=namespace, items=args.items, documents=documents)
        emu.seed_jobs(instance_id, args.seed_jobs, namespace=namespace)
    emu.start()
    print(f"AI Search emulator on {emu.url}", flush=True)
    conn = emu.connection_json(namespace=namespaces[0], global_key=args.email is not None)
    print(f"export AIRFLOW_CONN_AISEARCH_DEFAULT='{conn}'", flush=True)
    if documents is not None:  # after the two lines scripts read
        print(f"# {len(documents)} documents from {args.documents} in each instance", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main()
