"""Apache Airflow provider for Cloudflare AI Search (formerly AutoRAG) indexing jobs.

This module is the provider's entry point. It must stay cheap to import: nothing from Airflow,
``requests`` or the rest of the package is imported here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~5 ms to import, and this module must stay cheap
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-aisearch"
CONN_TYPE = "cloudflare_aisearch"
_INTEGRATION = "Cloudflare AI Search"
_ASSET_URIS = {
    "schemes": ["cloudflare-aisearch"],
    "handler": "airflow_provider_aisearch.assets.sanitize_uri",
    "factory": "airflow_provider_aisearch.assets.create_asset",
    "to_openlineage_converter": "airflow_provider_aisearch.lineage.asset_to_openlineage",
}
# r2://<account_id>/<bucket>: an instance's R2 source in hook lineage (airflow_provider_aisearch.lineage); no
# normaliser (Airflow keeps such URIs as written), only the OpenLineage name r2://<account_id> / <bucket>.
_R2_URIS = {
    "schemes": ["r2"],
    "handler": None,
    "to_openlineage_converter": "airflow_provider_aisearch.lineage.r2_asset_to_openlineage",
}


def _ui_field_behaviour() -> dict[str, Any]:
    """Standard-field behaviour of the connection form (snake_case keys, as the hook classmethod returns)."""
    return {
        "hidden_fields": ["schema", "port"],
        "relabeling": {
            "host": "API base URL",
            "login": "Account email (Global API Key only)",
            "password": "API token (or Global API Key)",
        },
        "placeholders": {
            "host": "https://api.cloudflare.com/client/v4",
            "login": "leave empty when using an API token",
            "password": "API token with AI Search:Edit and AI Search:Run",
            "account_id": "32-character account id from the Cloudflare dashboard",
            "namespace": "default",
        },
    }


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager (``apache_airflow_provider`` entry point)."""
    behaviour = _ui_field_behaviour()
    return {
        "package-name": PACKAGE_NAME,
        "name": _INTEGRATION,
        "description": "Run, list and wait on Cloudflare AI Search (formerly AutoRAG) indexing jobs.",
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://developers.cloudflare.com/ai-search/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aisearch.hooks"]}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aisearch.operators"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aisearch.sensors"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_aisearch.triggers"]}],
        "extra-links": ["airflow_provider_aisearch.links.AISearchJobsLink"],
        # cloudflare-aisearch://<account_id>/<namespace>/<instance_id> (airflow_provider_aisearch.assets);
        # Airflow 2.11 reads the same entry under its former name.
        "asset-uris": [_ASSET_URIS, _R2_URIS],
        "dataset-uris": [_ASSET_URIS, _R2_URIS],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_aisearch.hooks.AISearchHook",
                "hook-name": _INTEGRATION,
                "ui-field-behaviour": {
                    "hidden-fields": behaviour["hidden_fields"],
                    "relabeling": behaviour["relabeling"],
                    "placeholders": behaviour["placeholders"],
                },
                "conn-fields": {
                    # Airflow 3 shows no placeholder for these fields: the hint goes in the description.
                    "account_id": {
                        "label": "Account ID",
                        "description": "Required: the 32-character account id from the Cloudflare dashboard.",
                        "schema": {"type": "string"},
                    },
                    "namespace": {
                        "label": "Namespace",
                        "description": "AI Search namespace; every account has 'default'.",
                        "schema": {"type": "string", "default": "default"},
                    },
                },
            }
        ],
    }
