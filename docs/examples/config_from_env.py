"""Build a Config from the environment, or explicitly."""

from __future__ import annotations

from sqs_cluster import Config


def from_environment() -> Config:
    """SQS_CLUSTER_* variables (AWS_REGION, AWS_ENDPOINT_URL as fallbacks); keywords win."""
    return Config.from_env(lease_seconds=300)


def explicit() -> Config:
    """Every field has a default except ``table``; values are validated here."""
    config = Config(table="orders-records", bucket="orders-globals", region="eu-west-1")
    return config.with_changes(max_concurrency=64, lease_seconds=300)
