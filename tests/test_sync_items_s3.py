"""AISearchSyncItemsOperator with an ``s3://`` source: an ``ObjectStoragePath`` over a local S3-compatible server
(moto's), through an Airflow AWS connection whose ``endpoint_url`` points at it, as R2 is reached through its
S3 endpoint. Needs ``moto[server]`` and ``apache-airflow-providers-amazon`` (the ``s3`` extra); skipped without them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("airflow.providers.amazon.aws.fs.s3", reason="apache-airflow-providers-amazon is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")

from airflow_provider_aisearch.emulator import AISearchEmulator  # noqa: E402
from tests.test_sync_items import emu as emu  # noqa: E402  (the fixture: instance "kb" on built-in storage)
from tests.test_sync_items import run, stored, sync_op, uploads  # noqa: E402


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the module (Airflow caches an ``s3`` filesystem per connection id)."""
    import socket

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """A fresh bucket (its name in ``s3.bucket``) and the Airflow connection ``s3_local`` to the server."""
    import importlib
    import re

    boto3: Any = importlib.import_module("boto3")  # (no type stubs installed)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3_LOCAL", json.dumps(conn))
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="t"
    )
    client.bucket = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    client.create_bucket(Bucket=client.bucket)
    return client


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_an_s3_source_syncs_and_is_unchanged_the_second_time(emu: AISearchEmulator, s3: Any, deferrable: bool) -> None:
    for key, body in {"kb/a.md": b"alpha", "kb/sub/b.md": b"beta", "kb/skip.bin": b"\x00"}.items():
        s3.put_object(Bucket=s3.bucket, Key=key, Body=body)
    source = f"s3://s3_local@{s3.bucket}/kb"
    first = run(sync_op(source, pattern="**/*.md", deferrable=deferrable))
    assert sorted(first["uploaded"]) == ["a.md", "sub/b.md"] and first["failed"] == []
    assert stored(emu)["sub/b.md"].file_size == 4
    s3.put_object(Bucket=s3.bucket, Key="kb/a.md", Body=b"alpha, changed")
    s3.delete_object(Bucket=s3.bucket, Key="kb/sub/b.md")
    second = run(sync_op(source, pattern="**/*.md", delete_removed=True, deferrable=deferrable))
    assert (second["uploaded"], second["unchanged"], second["deleted"]) == (["a.md"], [], ["sub/b.md"])
    assert len(uploads(emu)) == 3


def test_a_missing_bucket_folder_fails_before_any_request(emu: AISearchEmulator, s3: Any) -> None:
    with pytest.raises(FileNotFoundError, match="source .* does not exist"):
        run(sync_op(f"s3://s3_local@{s3.bucket}/nothing-here"))
    assert emu.requests == []
