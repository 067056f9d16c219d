from __future__ import annotations

import pytest

from sqs_cluster import ENV_VARS, Config, ConfigError


def test_from_env_reads_documented_variables() -> None:
    env = {
        "SQS_CLUSTER_TABLE": "t",
        "SQS_CLUSTER_BUCKET": "b",
        "SQS_CLUSTER_MAX_CONCURRENCY": "64",
        "SQS_CLUSTER_DELETE_COMPLETED": "true",
        "SQS_CLUSTER_READ_TIMEOUT": "2.5",
        "AWS_REGION": "eu-west-1",
    }
    config = Config.from_env(env)
    assert (config.table, config.bucket, config.region) == ("t", "b", "eu-west-1")
    assert config.max_concurrency == 64
    assert config.delete_completed is True
    assert config.read_timeout == 2.5
    assert set(ENV_VARS) <= {f for f in Config.__dataclass_fields__}


def test_observability_is_off_unless_its_variables_say() -> None:
    assert (Config(table="t").metrics_namespace, Config(table="t").tracing) == (None, False)
    env = {
        "SQS_CLUSTER_TABLE": "t",
        "SQS_CLUSTER_METRICS_NAMESPACE": "Orders",
        "SQS_CLUSTER_TRACING": "true",
    }
    config = Config.from_env(env)
    assert (config.metrics_namespace, config.tracing) == ("Orders", True)


def test_overrides_win_over_environment() -> None:
    config = Config.from_env({"SQS_CLUSTER_TABLE": "t"}, table="other", max_concurrency=3)
    assert (config.table, config.max_concurrency) == ("other", 3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"table": ""}, "table"),
        ({"table": "t", "max_concurrency": 0}, "max_concurrency"),
        ({"table": "t", "max_concurrency": 5000}, "max_concurrency"),
        ({"table": "t", "lease_seconds": -1}, "lease_seconds"),
        ({"table": "t", "callback_lease_seconds": 0}, "callback_lease_seconds"),
        ({"table": "t", "callback_lease_seconds": 50_000}, "callback_lease_seconds"),
        ({"table": "t", "endpoint_url": "localhost:4566"}, "endpoint_url"),
        ({"table": "t", "bucket": ""}, "bucket"),
        ({"table": "t", "max_concurrency": True}, "max_concurrency"),
        ({"table": "t", "metrics_namespace": ""}, "metrics_namespace"),
        ({"table": "t", "tracing": "yes"}, "tracing"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        Config(**kwargs)  # type: ignore[arg-type]


def test_missing_table_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SQS_CLUSTER_TABLE"):
        Config.from_env({})


def test_bad_env_number_names_variable() -> None:
    with pytest.raises(ConfigError, match="SQS_CLUSTER_MAX_CONCURRENCY"):
        Config.from_env({"SQS_CLUSTER_TABLE": "t", "SQS_CLUSTER_MAX_CONCURRENCY": "many"})


def test_config_is_frozen() -> None:
    config = Config(table="t")
    with pytest.raises(AttributeError):
        config.table = "x"  # type: ignore[misc]
    assert config.with_changes(max_concurrency=8).max_concurrency == 8
