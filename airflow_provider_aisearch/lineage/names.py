"""Lineage dataset names: the AI Search instance and its source (R2 bucket, website), and the asset converters.

The one source of truth for the names both lineage paths of :mod:`~airflow_provider_aisearch.lineage.job_lineage`
report (operator lineage through OpenLineage, hook lineage through Airflow's collector), and for the
asset -> OpenLineage converters the provider info names (re-exported from ``lineage``, their public path).

Dataset names (OpenLineage namespace / name):

* the instance: ``cloudflare-aisearch://<account_id>`` / ``<namespace>/<instance_id>``, i.e. the asset
  URI of :func:`~airflow_provider_aisearch.assets.instance_uri` split after the authority (the legacy
  un-namespaced paths address the ``default`` namespace);
* an R2 bucket, by the connection extra ``lineage_r2_namespace``: ``"r2"`` (default)
  ``r2://<account_id>`` / ``<bucket>`` (R2 bucket names are unique per account only, and an R2
  object's address is ``https://<account_id>.r2.cloudflarestorage.com/<bucket>/<key>``: the account
  is the datasource and the bucket the name; this departs from OpenLineage's object-store pattern,
  ``<scheme>://<bucket>`` / object key, on purpose), or ``"s3"`` ``s3://<bucket>`` / ``/`` (the object
  store convention for a whole bucket: joins the lineage of Spark or anything else that reads the
  bucket through R2's S3 API, but is the same name as an AWS bucket called alike);
* a web crawler's site: ``<scheme>://<host>[:<port>]`` / ``<path>`` (``/`` for the root; user info,
  query, fragment and the scheme's default port are dropped, so no credential in a URL reaches an event);
* managed storage (``type`` ``None``): no input dataset; the files were uploaded to the instance
  itself, which is already the output.

Only :meth:`DatasetName.to_openlineage` and the converters need the OpenLineage client; they import
it inside the function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_aisearch.api import DEFAULT_NAMESPACE
from airflow_provider_aisearch.api.connection import (
    DEFAULT_R2_NAMESPACE,
    R2_NAMESPACE_EXTRA,
    R2_NAMESPACES,
    validate_r2_namespace,
)
from airflow_provider_aisearch.assets import SCHEME, _validate_account_id, instance_uri, parse_instance_uri

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseHook

    from airflow_provider_aisearch.models.instances import Instance

__all__ = [
    "DEFAULT_R2_NAMESPACE",
    "R2_NAMESPACES",
    "R2_NAMESPACE_EXTRA",
    "DatasetName",
    "asset_to_openlineage",
    "instance_dataset",
    "r2_asset_to_openlineage",
    "source_dataset",
    "validate_r2_namespace",
]

log = logging.getLogger("airflow_provider_aisearch.lineage")  # the name it had before the split

#: The URI scheme of R2 buckets in Airflow assets (hook lineage); the provider registers its converter.
R2_SCHEME = "r2"
#: Instance types (``Instance.type``) with a source dataset.
R2_TYPE, WEB_CRAWLER_TYPE = "r2", "web-crawler"


@dataclass(frozen=True)
class DatasetName:
    """
    An OpenLineage dataset name, and the Airflow asset URI it stands for.

    :param namespace: The datasource (``scheme://authority``).
    :param name: The dataset within it.
    :param uri: The matching Airflow asset URI (hook lineage).
    """

    namespace: str
    name: str
    uri: str

    def to_openlineage(self) -> Any:
        """The OpenLineage ``Dataset`` (needs the OpenLineage client)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset

        return Dataset(namespace=self.namespace, name=self.name)


def instance_dataset(account_id: str, namespace: str | None, instance_id: str) -> DatasetName:
    """
    The instance as a dataset: ``cloudflare-aisearch://<account_id>`` / ``<namespace>/<instance_id>``.

    :param account_id: Cloudflare account id.
    :param namespace: AI Search namespace; ``None`` (legacy paths) is ``default``.
    :param instance_id: AI Search instance id.
    :raises ValueError: naming the invalid part.
    """
    uri = instance_uri(account_id, namespace or DEFAULT_NAMESPACE, instance_id)
    ref = parse_instance_uri(uri)
    return DatasetName(f"{SCHEME}://{ref.account_id}", f"{ref.namespace}/{ref.instance_id}", uri)


def _bucket_dataset(bucket: str, account_id: str, r2_namespace: str) -> DatasetName:
    bucket = bucket.strip().strip("/")
    if not bucket or "/" in bucket:
        raise ValueError(f"an R2 source is a bucket name, got {bucket!r}")
    if validate_r2_namespace(r2_namespace) == "s3":
        return DatasetName(f"s3://{bucket}", "/", f"s3://{bucket}")
    account = _validate_account_id(account_id)
    return DatasetName(f"{R2_SCHEME}://{account}", bucket, f"{R2_SCHEME}://{account}/{bucket}")


def _site_dataset(url: str) -> DatasetName:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a web crawler's source is an http(s) URL, got scheme {parts.scheme!r}")
    port = parts.port
    default_port = {"http": 80, "https": 443}[scheme]
    # No user info; a scheme's default port is left out (https://h:443 and https://h are one site).
    authority = parts.hostname.lower() + (f":{port}" if port and port != default_port else "")
    path = parts.path or "/"
    namespace = f"{scheme}://{authority}"
    return DatasetName(namespace, path, namespace + path)


def source_dataset(instance: Instance, account_id: str, r2_namespace: str | None = None) -> DatasetName | None:
    """
    The instance's source as a dataset, or ``None`` (managed storage, or no source known).

    :param instance: The instance (``type`` and ``source``, from ``AISearchHook.get_instance``).
    :param account_id: Cloudflare account id (R2 bucket names are unique per account).
    :param r2_namespace: ``"r2"`` (default) or ``"s3"``: see the module docstring.
    :raises ValueError: a bad setting, or a source that is not a bucket name / an http(s) URL.
    """
    r2_namespace = validate_r2_namespace(r2_namespace)
    if instance.type is None or not instance.source:
        return None
    if instance.type == R2_TYPE:
        return _bucket_dataset(instance.source, account_id, r2_namespace)
    if instance.type == WEB_CRAWLER_TYPE:
        return _site_dataset(instance.source)
    log.info("Instance %s has source type %r, which has no lineage dataset", instance.id, instance.type)
    return None


# -- asset -> OpenLineage converters (provider info ``to_openlineage_converter``) --------------------


def asset_to_openlineage(asset: Any, lineage_context: BaseHook | None = None) -> Any:
    """
    A ``cloudflare-aisearch://`` asset as an OpenLineage dataset (the OpenLineage provider calls this).

    :param asset: The Airflow asset.
    :param lineage_context: The hook that reported it (unused).
    """
    ref = parse_instance_uri(asset.uri)
    return instance_dataset(ref.account_id, ref.namespace, ref.instance_id).to_openlineage()


def r2_asset_to_openlineage(asset: Any, lineage_context: BaseHook | None = None) -> Any:
    """
    An ``r2://<account_id>/<bucket>[/<key>]`` asset as an OpenLineage dataset: ``r2://<account_id>`` /
    ``<bucket>[/<key>]``.

    :param asset: The Airflow asset.
    :param lineage_context: The hook that reported it (unused).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(asset.uri)
    if parts.scheme.lower() != R2_SCHEME or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(f"an R2 asset URI is r2://<account_id>/<bucket>[/<key>], got {asset.uri!r}")
    return Dataset(namespace=f"{R2_SCHEME}://{parts.hostname.lower()}", name=parts.path.lstrip("/"))
