"""Multipart parity: ``AISearchHook.upload_item`` and the async client send the ``cloudflare`` 5.9.0 SDK's body.

The SDK and our clients upload the same file and metadata to the emulator, which keeps each
``multipart/form-data`` body's parts (``RequestRecord.form``); boundaries differ between clients, so the
parts are compared by name, filename, content type and content, in order. Both auth schemes.
"""

from __future__ import annotations

import asyncio
import json

import cloudflare
import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, RequestRecord
from airflow_provider_aisearch.hooks import AISearchAsyncClient, AISearchHook
from tests.conftest import EMAIL, GLOBAL_KEY, TOKEN, Connect

CONTENT = "# Tokens\r\n\r\nRotate your API token every 90 days.\n\u00e9\u00e8 \x00 binary-safe: \xff".encode()


def _sdk(emu: AISearchEmulator, *, global_key: bool) -> cloudflare.Cloudflare:
    if global_key:
        return cloudflare.Cloudflare(api_email=EMAIL, api_key=GLOBAL_KEY, base_url=emu.url, max_retries=0)
    return cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.url, max_retries=0)


def _parts(record: RequestRecord) -> list[tuple[str, str | None, str | None, bytes]]:
    form = record.form
    assert form is not None, "the emulator did not read a multipart body"
    return [(p.name, p.filename, p.content_type, p.content) for p in form]


@pytest.mark.parametrize("global_key", [False, True], ids=["token", "global-key"])
@pytest.mark.parametrize(
    ("sdk_file", "ours"),
    [
        pytest.param(
            {"file": ("guides/tokens.md", CONTENT, "text/markdown"), "metadata": json.dumps({"team": "ops", "v": 2})},
            {"content_type": "text/markdown", "metadata": {"team": "ops", "v": 2}},
            id="metadata",
        ),
        pytest.param(
            {"file": ("guides/tokens.md", CONTENT), "wait_for_completion": True},
            {"wait_for_completion": True},
            id="guessed-type-and-wait",
        ),
        pytest.param(
            {"file": ("guides/tokens.md", CONTENT), "metadata": json.dumps({"a": True}), "wait_for_completion": False},
            {"metadata": {"a": True}, "wait_for_completion": False},
            id="no-wait",
        ),
    ],
)
def test_the_upload_body_is_the_sdk_s_part_for_part(
    make_emulator: object, connect: Connect, global_key: bool, sdk_file: dict[str, object], ours: dict[str, object]
) -> None:
    emu: AISearchEmulator = make_emulator(instances=[])  # type: ignore[operator]
    emu.add_instance("kb", type=None, items=0)
    emu.set_upload_duration(0)
    connect(emu, global_key=global_key)
    with _sdk(emu, global_key=global_key) as client:
        theirs = client.aisearch.namespaces.instances.items.upload(
            "kb",
            account_id=emu.account_id,
            name="default",
            file=sdk_file,  # type: ignore[arg-type]
        )
    with AISearchHook() as hook:
        mine = hook.upload_item("kb", "guides/tokens.md", CONTENT, **ours)  # type: ignore[arg-type]

    async def upload_async() -> None:
        async with AISearchAsyncClient() as client:
            await client.run(client.api.upload_item("kb", "guides/tokens.md", CONTENT, **ours))  # type: ignore[arg-type]

    asyncio.run(upload_async())
    sdk_request, hook_request, async_request = emu.requests_to("items", "POST")
    assert sdk_request.path == hook_request.path == async_request.path
    assert sdk_request.auth == hook_request.auth == async_request.auth == ("global_key" if global_key else "bearer")
    assert _parts(hook_request) == _parts(sdk_request)
    assert _parts(async_request) == _parts(sdk_request)
    assert _parts(sdk_request)[-1][0] == "file"  # the file part was sent, and compared, too
    # Both read the same item back.
    assert (mine.id, mine.key, mine.checksum) == (theirs.id, theirs.key, theirs.checksum)
    assert mine.file_size == theirs.file_size == len(CONTENT)
