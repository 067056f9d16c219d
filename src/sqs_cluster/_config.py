"""Library configuration: one frozen dataclass, validated on creation, loadable from env vars."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ._errors import ConfigError

DAY = 24 * 3600

# Field name -> environment variable. Documented in docs/configuration.md.
ENV_VARS: dict[str, str] = {
    "table": "SQS_CLUSTER_TABLE",
    "bucket": "SQS_CLUSTER_BUCKET",
    "region": "SQS_CLUSTER_REGION",
    "endpoint_url": "SQS_CLUSTER_ENDPOINT_URL",
    "max_concurrency": "SQS_CLUSTER_MAX_CONCURRENCY",
    "record_ttl_seconds": "SQS_CLUSTER_RECORD_TTL_SECONDS",
    "completed_retention_seconds": "SQS_CLUSTER_COMPLETED_RETENTION_SECONDS",
    "delete_completed": "SQS_CLUSTER_DELETE_COMPLETED",
    "lease_seconds": "SQS_CLUSTER_LEASE_SECONDS",
    "callback_lease_seconds": "SQS_CLUSTER_CALLBACK_LEASE_SECONDS",
    "max_attempts": "SQS_CLUSTER_MAX_ATTEMPTS",
    "partial_retry_attempts": "SQS_CLUSTER_PARTIAL_RETRY_ATTEMPTS",
    "max_receive_count": "SQS_CLUSTER_MAX_RECEIVE_COUNT",
    "connect_timeout": "SQS_CLUSTER_CONNECT_TIMEOUT",
    "read_timeout": "SQS_CLUSTER_READ_TIMEOUT",
    "offload_payloads": "SQS_CLUSTER_OFFLOAD_PAYLOADS",
    "offload_threshold_bytes": "SQS_CLUSTER_OFFLOAD_THRESHOLD_BYTES",
    "delete_payloads": "SQS_CLUSTER_DELETE_PAYLOADS",
    "record_body_bytes": "SQS_CLUSTER_RECORD_BODY_BYTES",
    "stream_tasks_above": "SQS_CLUSTER_STREAM_TASKS_ABOVE",
    "metrics_namespace": "SQS_CLUSTER_METRICS_NAMESPACE",
    "tracing": "SQS_CLUSTER_TRACING",
}

OTHER_ENV_VARS = frozenset({"SQS_CLUSTER_FAULTS"})
"""``SQS_CLUSTER_*`` variables read elsewhere (fault injection in ``sqs_cluster.testing``)."""
ENV_PREFIX = "SQS_CLUSTER_"


def unknown_env_vars(env: Mapping[str, str]) -> list[str]:
    """One warning per ``SQS_CLUSTER_*`` variable the library does not read (a typo such as
    ``SQS_CLUSTER_TABEL`` would otherwise be ignored without a word), naming the closest one."""
    import difflib

    known = {*ENV_VARS.values(), *OTHER_ENV_VARS}
    warnings = []
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX) and v not in known):
        close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see the configuration page"
        warnings.append(f"{var} is not a setting sqs-cluster reads (ignored); {hint}")
    return warnings


def _positive(
    name: str, value: float, *, maximum: float | None = None, integer: bool = True
) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = "a whole number" if integer else "a number"
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: must be <= {maximum}, got {value!r}")


@dataclass(frozen=True)
class Config:
    """Where records and globals live and how hard the client may push AWS.

    ``table`` holds every record; ``bucket`` holds cluster globals (optional for plain messages).
    ``max_concurrency`` bounds the AWS requests in flight at once, across every operation of one
    client. ``lease_seconds`` is how long a claimed message stays "in progress" before another
    delivery may take it over: set it above your handler's longest run and a little below the
    queue's visibility timeout (a redelivery after a crash then finds the lease expired).
    ``callback_lease_seconds`` (default: ``lease_seconds``) is the same for a running
    ``on_cluster_complete`` callback, whose runner renews it every third of its length: a longer
    one survives slower renewals, at the price of a later rerun when the runner dies. Completed
    records are kept ``completed_retention_seconds`` (default 14 days, the longest a queue can
    keep a message) so late duplicates are still recognised, unless ``delete_completed``
    restores immediate deletion. A task's record lives as long as its cluster whatever this is.

    Large messages: a body (with its attributes) above ``offload_threshold_bytes`` (default:
    the queue's own ``MaximumMessageSize``) goes to ``bucket`` and the message carries a
    pointer in the format of AWS's extended clients, unless ``offload_payloads`` is False
    (then it is refused). The payload is deleted once its message succeeded, unless
    ``delete_payloads`` is False. A record copies a body of at most ``record_body_bytes``;
    above that it keeps the body's size, SHA-256 and where it lives.

    Clusters from a stream of tasks (an iterable, not a list): one longer than
    ``stream_tasks_above`` (default 16,000: what fills the 64 counter shards) is fanned out as
    it is read, in memory bounded by ``max_concurrency``; a shorter one is read whole first.

    Observability (both off by default): ``metrics_namespace`` writes metrics as CloudWatch
    EMF lines in that namespace through ``aws-embedded-metrics`` (``pip install
    'sqs-cluster[metrics]'``; or hand Powertools' ``Metrics`` to the client instead);
    ``tracing`` makes OpenTelemetry spans on the global tracer provider and carries the
    producer's trace context on every message (``pip install 'sqs-cluster[tracing]'``).
    """

    table: str
    bucket: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    max_concurrency: int = 32
    record_ttl_seconds: int = 30 * DAY
    completed_retention_seconds: int = 14 * DAY  # SQS's longest retention: a late copy
    delete_completed: bool = False
    lease_seconds: int = 300
    callback_lease_seconds: int | None = None
    max_attempts: int = 5
    partial_retry_attempts: int = 8
    max_receive_count: int | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    offload_payloads: bool = True
    offload_threshold_bytes: int | None = None
    delete_payloads: bool = True
    record_body_bytes: int = 4096
    stream_tasks_above: int = 16_000
    metrics_namespace: str | None = None
    tracing: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.table, str) or not self.table:
            raise ConfigError(f"table: a DynamoDB table name is required, got {self.table!r}")
        if self.bucket is not None and (not isinstance(self.bucket, str) or not self.bucket):
            raise ConfigError(f"bucket: expected a bucket name or None, got {self.bucket!r}")
        if self.endpoint_url is not None and not str(self.endpoint_url).startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                f"endpoint_url: must start with http:// or https://, got {self.endpoint_url!r}"
            )
        _positive("max_concurrency", self.max_concurrency, maximum=1000)
        _positive("record_ttl_seconds", self.record_ttl_seconds)
        _positive("completed_retention_seconds", self.completed_retention_seconds)
        _positive("lease_seconds", self.lease_seconds, maximum=12 * 3600)
        if self.callback_lease_seconds is not None:
            _positive("callback_lease_seconds", self.callback_lease_seconds, maximum=12 * 3600)
        _positive("max_attempts", self.max_attempts, maximum=20)
        _positive("partial_retry_attempts", self.partial_retry_attempts, maximum=50)
        _positive("connect_timeout", self.connect_timeout, integer=False)
        _positive("read_timeout", self.read_timeout, integer=False)
        if self.max_receive_count is not None:
            _positive("max_receive_count", self.max_receive_count, maximum=1000)
        if self.offload_threshold_bytes is not None:
            _positive("offload_threshold_bytes", self.offload_threshold_bytes, maximum=1_048_576)
        _positive("stream_tasks_above", self.stream_tasks_above, maximum=1_000_000)
        self._check_observability()
        if isinstance(self.record_body_bytes, bool) or not isinstance(self.record_body_bytes, int):
            raise ConfigError(
                f"record_body_bytes: expected a whole number, got {self.record_body_bytes!r}"
            )
        if not 0 <= self.record_body_bytes <= 300_000:
            raise ConfigError(
                "record_body_bytes: must be from 0 to 300000 (a record is at most 400 KB), "
                f"got {self.record_body_bytes!r}"
            )

    def _check_observability(self) -> None:
        namespace = self.metrics_namespace
        if namespace is not None and (
            not isinstance(namespace, str) or not 1 <= len(namespace) <= 255
        ):
            raise ConfigError(
                f"metrics_namespace: expected a CloudWatch namespace of 1-255 characters or "
                f"None, got {namespace!r}"
            )
        if not isinstance(self.tracing, bool):
            raise ConfigError(f"tracing: expected True or False, got {self.tracing!r}")

    @property
    def callback_lease(self) -> int:
        """The callback's lease in seconds: ``callback_lease_seconds``, else ``lease_seconds``."""
        return self.callback_lease_seconds or self.lease_seconds

    def with_changes(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied (and validated)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build a Config from ``SQS_CLUSTER_*`` variables (see ``ENV_VARS``).

        The region falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, and the endpoint to
        ``AWS_ENDPOINT_URL``, as the AWS SDKs do. Keyword ``overrides`` win over the environment.
        An ``SQS_CLUSTER_*`` variable it does not know (a typo) gives a ``UserWarning`` naming
        the closest known one.
        """
        env = os.environ if environ is None else environ
        for message in unknown_env_vars(env):
            warnings.warn(message, UserWarning, stacklevel=2)
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is not None and raw != "":
                values[name] = _parse(name, var, raw, str(types[name]))
        values.setdefault("region", env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
        values.setdefault("endpoint_url", env.get("AWS_ENDPOINT_URL") or None)
        values.update(overrides)
        if not values.get("table"):
            raise ConfigError(f"table: set {ENV_VARS['table']} or pass table=...")
        return cls(**values)


def _parse(name: str, var: str, raw: str, type_name: str) -> Any:
    try:
        if type_name.startswith("bool"):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if type_name.startswith("int"):
            return int(raw)
        if type_name.startswith("float"):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {var}={raw!r} is not a valid {type_name}") from None
    return raw
