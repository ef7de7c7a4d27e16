"""The instance asset URI (issue 14): cloudflare-aisearch://<account_id>/<namespace>/<instance_id>."""

from __future__ import annotations

import warnings

import airflow
import pytest

from airflow_provider_aisearch import get_provider_info
from airflow_provider_aisearch.assets import SCHEME, create_asset, instance_uri, parse_instance_uri, sanitize_uri

ACCOUNT = "0123456789abcdef0123456789abcdef"
AIRFLOW_2 = airflow.__version__.startswith("2.")


def test_instance_uri_validates_and_normalises() -> None:
    uri = instance_uri(ACCOUNT.upper(), "default", "docs")
    assert uri == f"cloudflare-aisearch://{ACCOUNT}/default/docs"
    assert parse_instance_uri(uri) == (ACCOUNT, "default", "docs")


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("cloudflare-aisearch://docs", "<account_id>/<namespace>/<instance_id>"),
        (f"cloudflare-aisearch://{ACCOUNT}/docs", "<account_id>/<namespace>/<instance_id>"),
        (f"cloudflare-aisearch://{ACCOUNT}/default/docs/extra", "<account_id>/<namespace>/<instance_id>"),
        ("cloudflare-aisearch://not-an-account/default/docs", "account_id"),
        (f"cloudflare-aisearch://{ACCOUNT}/Bad_NS/docs", "namespace"),
        (f"cloudflare-aisearch://{ACCOUNT}/default/Docs!", "instance_id"),
        (f"cloudflare-aisearch://{ACCOUNT}:8080/default/docs", "port"),
        (f"cloudflare-aisearch://{ACCOUNT}/default/docs?x=1", "query"),
        (f"aisearch://{ACCOUNT}/default/docs", "starts with"),
    ],
)
def test_bad_uris_are_rejected_naming_the_part(uri: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_instance_uri(uri)


def test_the_scheme_is_registered_in_the_provider_info() -> None:
    info = get_provider_info()
    for key in ("asset-uris", "dataset-uris"):  # Airflow 3; Airflow 2.11 reads the former name
        (entry,) = [e for e in info[key] if SCHEME in e["schemes"]]
        assert entry["schemes"] == [SCHEME]
        assert entry["handler"] == "airflow_provider_aisearch.assets.sanitize_uri"
        assert entry["factory"] == "airflow_provider_aisearch.assets.create_asset"


def test_airflow_normalises_and_validates_assets_of_the_scheme() -> None:
    """Airflow finds the handler through the provider info: DAG parse normalises, or rejects, the URI."""
    from airflow.providers.common.compat.sdk import Asset

    asset = create_asset(account_id=ACCOUNT, namespace="default", instance_id="docs")
    assert asset.uri == f"cloudflare-aisearch://{ACCOUNT}/default/docs"
    assert Asset(f"cloudflare-aisearch://{ACCOUNT.upper()}/default/docs/").uri == asset.uri
    if AIRFLOW_2:  # 2.11 warns about a non-compliant dataset URI (strict validation is off by default)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Asset("cloudflare-aisearch://docs")
        assert any("account_id" in str(w.message) or "instance_id" in str(w.message) for w in caught)
    else:
        with pytest.raises(ValueError, match="<account_id>/<namespace>/<instance_id>"):
            Asset("cloudflare-aisearch://docs")


def test_sanitize_uri_is_idempotent() -> None:
    from urllib.parse import urlsplit, urlunsplit

    once = urlunsplit(sanitize_uri(urlsplit(f"cloudflare-aisearch://{ACCOUNT.upper()}/default/docs")))
    assert urlunsplit(sanitize_uri(urlsplit(once))) == once == f"cloudflare-aisearch://{ACCOUNT}/default/docs"
