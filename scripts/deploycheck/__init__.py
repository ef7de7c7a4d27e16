"""Pieces of ``make deploy-check`` (``scripts/deploy_check.py``): services, Airflow components, scenarios."""
