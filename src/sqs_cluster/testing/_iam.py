"""Recording the AWS operations a ``MessageClient`` issues and checking them against an IAM policy.

``OperationRecorder`` sees every request a client makes and turns it into the :class:`Access`
(action, resource, context) IAM would check, so a test can fail when the library starts calling
something the documented least-privilege policy does not allow.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    "dynamodb.GetItem": ("dynamodb:GetItem",),
    "dynamodb.BatchGetItem": ("dynamodb:BatchGetItem",),
    "dynamodb.Query": ("dynamodb:Query",),
    "dynamodb.Scan": ("dynamodb:Scan",),
    "dynamodb.PutItem": ("dynamodb:PutItem",),
    "dynamodb.UpdateItem": ("dynamodb:UpdateItem",),
    "dynamodb.DeleteItem": ("dynamodb:DeleteItem",),
    "dynamodb.BatchWriteItem": ("dynamodb:BatchWriteItem",),
    "dynamodb.DescribeTable": ("dynamodb:DescribeTable",),
    "sqs.SendMessage": ("sqs:SendMessage",),
    "sqs.SendMessageBatch": ("sqs:SendMessage",),
    "sqs.ReceiveMessage": ("sqs:ReceiveMessage",),
    "sqs.DeleteMessage": ("sqs:DeleteMessage",),
    "sqs.DeleteMessageBatch": ("sqs:DeleteMessage",),
    "sqs.ChangeMessageVisibility": ("sqs:ChangeMessageVisibility",),
    "sqs.ChangeMessageVisibilityBatch": ("sqs:ChangeMessageVisibility",),
    "sqs.GetQueueAttributes": ("sqs:GetQueueAttributes",),
    "sqs.GetQueueUrl": ("sqs:GetQueueUrl",),
    "s3.GetObject": ("s3:GetObject",),
    "s3.HeadObject": ("s3:GetObject",),
    "s3.PutObject": ("s3:PutObject",),
    "s3.DeleteObject": ("s3:DeleteObject",),
    "s3.ListObjectsV2": ("s3:ListBucket",),
    "s3.HeadBucket": ("s3:ListBucket",),
}
"""IAM actions an operation needs. Transactions need the actions of their items (below)."""

TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


@dataclass(frozen=True)
class Access:
    """One IAM authorisation an operation needs: an action on a resource, with its context."""

    action: str
    resource: str
    operation: str
    leading_keys: tuple[str, ...] = ()
    sse: str | None = None


def required_access(
    service: str, operation: str, params: Mapping[str, Any], *, account_id: str = "123456789012"
) -> list[Access]:
    """The authorisations one request needs, from the request dict a request hook receives."""
    name = f"{service}.{operation}"
    region = str(params.get("context", {}).get("client_region") or "us-east-1")
    if service == "dynamodb":
        return _dynamodb_access(name, _json_body(params), region, account_id)
    if service == "sqs":
        body = _json_body(params)
        arn = _queue_arn(str(body.get("QueueUrl", "")), region)
        return [Access(a, arn, name) for a in _actions(name)]
    if service == "s3":
        bucket, key = _s3_location(str(params.get("url", "")))
        sse = _header(params, "x-amz-server-side-encryption")
        access = []
        for action in _actions(name):
            if action == "s3:ListBucket" or not key:
                access.append(Access(action, f"arn:aws:s3:::{bucket}", name))
            else:
                access.append(Access(action, f"arn:aws:s3:::{bucket}/{key}", name, sse=sse))
        return access
    return [Access(a, "*", name) for a in _actions(name)]


def _actions(name: str) -> tuple[str, ...]:
    service, operation = name.split(".", 1)
    return IAM_ACTIONS.get(name, (f"{service}:{operation}",))


def _json_body(params: Mapping[str, Any]) -> dict[str, Any]:
    body = params.get("body") or b"{}"
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _header(params: Mapping[str, Any], name: str) -> str | None:
    for key, value in (params.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _dynamodb_access(
    name: str, body: Mapping[str, Any], region: str, account_id: str
) -> list[Access]:
    def arn(table: str) -> str:
        return f"arn:aws:dynamodb:{region}:{account_id}:table/{table}"

    if name == "dynamodb.TransactWriteItems" or name == "dynamodb.TransactGetItems":
        access = []
        for item in body.get("TransactItems", []):
            for kind, spec in item.items():
                keys = _leading_keys(spec)
                action = TRANSACT_ITEM_ACTIONS.get(kind, f"dynamodb:{kind}")
                access.append(Access(action, arn(spec.get("TableName", "")), name, keys))
        return access
    if "RequestItems" in body:
        access = []
        for table, request in body["RequestItems"].items():
            entries = request.get("Keys", []) if isinstance(request, dict) else request
            found = tuple(k for entry in entries for k in _leading_keys(entry))
            access.extend(Access(a, arn(table), name, found) for a in _actions(name))
        return access
    keys = _leading_keys(body)
    resource = arn(str(body.get("TableName", "")))
    if name == "dynamodb.Query":
        values = body.get("ExpressionAttributeValues", {})
        match = re.match(r"^\s*\w+\s*=\s*(:\w+)", str(body.get("KeyConditionExpression", "")))
        if match and match.group(1) in values:  # the table's or the index's partition key
            keys = (values[match.group(1)].get("S", ""),)
        if body.get("IndexName"):
            resource += f"/index/{body['IndexName']}"
    return [Access(a, resource, name, keys) for a in _actions(name)]


def _leading_keys(spec: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    for holder in ("Key", "Item"):
        value = spec.get(holder)
        if isinstance(value, Mapping) and "pKey" in value:
            found.append(str(value["pKey"].get("S", "")))
    for nested in ("PutRequest", "DeleteRequest"):
        if isinstance(spec.get(nested), Mapping):
            found.extend(_leading_keys(spec[nested]))
    if "pKey" in spec and isinstance(spec["pKey"], Mapping):  # a bare key (BatchGetItem)
        found.append(str(spec["pKey"].get("S", "")))
    return tuple(found)


def _queue_arn(queue_url: str, region: str) -> str:
    parts = queue_url.rstrip("/").split("/")
    if len(parts) < 5:
        return f"arn:aws:sqs:{region}:*:{queue_url}"
    host = urlsplit(queue_url).hostname or ""
    match = re.match(r"^sqs\.([a-z0-9-]+)\.", host)
    return f"arn:aws:sqs:{match.group(1) if match else region}:{parts[-2]}:{parts[-1]}"


def _s3_location(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = unquote(parts.path.lstrip("/"))
    virtual = re.match(r"^(.+)\.s3[.-]", host)
    if virtual:
        return virtual.group(1), path
    bucket, _, key = path.partition("/")
    return bucket, key


_INFRASTRUCTURE = (
    "aiobotocore",
    "botocore",
    "asyncio",
    "contextlib",
    "functools",
    "sqs_cluster._aws.clients",
    "sqs_cluster._facade.portal",
    "sqs_cluster._facade.runtime",
    "sqs_cluster.testing",
    "threading",
    "concurrent",
)


def _library_caller() -> str | None:
    """Who issued the request being hooked: 'library', 'provisioning' or None (anyone else).

    Decided by the innermost calling frame outside botocore, asyncio and the AWS layer: code
    in ``sqs_cluster._aws.provision`` is provisioning, other ``sqs_cluster`` code is the library,
    and everything else (a test reaching for ``client._aws``) is not counted.
    """
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(_INFRASTRUCTURE):
            if module.startswith("sqs_cluster._aws.provision"):
                return "provisioning"
            return "library" if module.startswith("sqs_cluster") else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


class OperationRecorder:
    """Records the AWS operations clients issue, and the IAM access they need.

    Attach with ``client.add_request_hook(recorder.hook)`` (or :meth:`attach`), or record every
    client opened in a block with :meth:`record_all_clients`. With ``library_only`` only the
    requests issued by sqs-cluster's own code count: a test's direct calls on ``client._aws``
    and ``ensure_resources`` (provisioning) are left out.
    """

    def __init__(self, *, library_only: bool = False, account_id: str = "123456789012") -> None:
        self.library_only = library_only
        self.account_id = account_id
        self.operations: Counter[str] = Counter()
        self.access: set[Access] = set()
        self._lock = threading.Lock()

    def hook(self, service: str, operation: str, params: Mapping[str, Any]) -> None:
        """A request hook: ``client.add_request_hook(recorder.hook)``."""
        if self.library_only and _library_caller() != "library":
            return
        needed = required_access(service, operation, params, account_id=self.account_id)
        with self._lock:
            self.operations[f"{service}.{operation}"] += 1
            self.access.update(needed)

    def attach(self, client: Any) -> Callable[[], None]:
        """Record ``client``'s requests; returns a function that stops recording."""
        remove: Callable[[], None] = client.add_request_hook(self.hook)
        return remove

    @contextmanager
    def record_all_clients(self) -> Iterator[OperationRecorder]:
        """Record every sqs-cluster AWS layer opened inside the block (patches ``AWS``)."""
        from .._aws.clients import AWS

        original = AWS.__aenter__
        recorder = self

        async def __aenter__(aws: AWS) -> AWS:
            result = await original(aws)
            aws.add_request_hook(recorder.hook)
            return result

        AWS.__aenter__ = __aenter__  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            AWS.__aenter__ = original  # type: ignore[method-assign]

    def actions(self) -> set[str]:
        """Every IAM action the recorded requests needed."""
        with self._lock:
            return {a.action for a in self.access}

    def violations(
        self,
        policy: Mapping[str, Any],
        placeholders: Mapping[str, str],
        *,
        actions_only: bool = False,
    ) -> list[str]:
        """What the policy would deny: one line per action/resource it does not allow.

        ``placeholders`` replace the policy's upper-case placeholders (``TABLE_NAME`` ...);
        a value of ``"*"`` matches anything. ``actions_only`` checks only that each action is
        allowed somewhere, ignoring resources and conditions.
        """
        with self._lock:
            access = sorted(self.access, key=lambda a: (a.action, a.resource))
        statements = _statements(policy, placeholders)
        problems = []
        for item in access:
            if actions_only:
                if not any(_allows_action(s, item.action) for s in statements):
                    problems.append(f"{item.operation} needs {item.action}")
                continue
            if not any(_allows(s, item) for s in statements):
                where = f"{item.action} on {item.resource}"
                extra = f" (leading keys {sorted(set(item.leading_keys))[:3]})" * bool(
                    item.leading_keys
                )
                problems.append(f"{item.operation} needs {where}{extra}")
        return problems


def _statements(policy: Mapping[str, Any], placeholders: Mapping[str, str]) -> list[dict[str, Any]]:
    raw = policy.get("Statement", [])
    result = []
    for statement in raw if isinstance(raw, list) else [raw]:
        text = json.dumps(statement)
        for name, value in placeholders.items():
            text = text.replace(name, value)
        result.append(json.loads(text))
    return result


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def iam_match(pattern: str, value: str) -> bool:
    """IAM wildcard matching: ``*`` any run of characters, ``?`` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _allows_action(statement: Mapping[str, Any], action: str) -> bool:
    return statement.get("Effect") == "Allow" and any(
        iam_match(a.lower(), action.lower()) for a in _listed(statement.get("Action"))
    )


def _allows(statement: Mapping[str, Any], access: Access) -> bool:
    if not _allows_action(statement, access.action):
        return False
    if not any(iam_match(r, access.resource) for r in _listed(statement.get("Resource"))):
        return False
    return _conditions_hold(statement.get("Condition", {}), access)


def _conditions_hold(conditions: Mapping[str, Any], access: Access) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            patterns = _listed(expected)
            if operator == "ForAllValues:StringLike" and key == "dynamodb:LeadingKeys":
                if not all(any(iam_match(p, k) for p in patterns) for k in access.leading_keys):
                    return False
            elif operator == "StringEquals" and key == "s3:x-amz-server-side-encryption":
                if access.sse not in patterns:
                    return False
            else:
                raise ValueError(f"the policy checker does not know {operator} {key}; extend it")
    return True


__all__ = ["IAM_ACTIONS", "Access", "OperationRecorder", "iam_match", "required_access"]
