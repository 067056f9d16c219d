"""The base error and the generic ones; each feature's own errors live in its package.

Every error a caller can cause names the field, the value and the limit. Imports nothing from
the package, so every module can use it.
"""

from __future__ import annotations

from typing import Any


class SQSClusterError(Exception):
    """Base class of every error raised by sqs-cluster."""


class ConfigError(SQSClusterError, ValueError):
    """A configuration value is missing or out of range."""


class ValidationError(SQSClusterError, ValueError):
    """Input to the library is invalid; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class MalformedEventError(ValidationError):
    """A Lambda event or record is not an SQS event the library understands."""


class RecordNotFoundError(SQSClusterError, LookupError):
    """No DynamoDB record exists for the key."""

    def __init__(self, key: Any) -> None:
        p_key, r_key = getattr(key, "p_key", None), getattr(key, "r_key", None)
        where = f"pKey {p_key!r}, rKey {r_key!r}" if p_key is not None else repr(key)
        super().__init__(f"no record for {where}")
        self.key = key


class ConflictError(SQSClusterError):
    """A conditional read-modify-write lost too many races in a row."""


class ResourceMissingError(SQSClusterError):
    """A table, bucket or queue the configuration names does not exist."""
